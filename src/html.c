/*
 * html.c - HTML -> visible text with libxml2's error-recovering HTML parser
 *
 * The document is parsed once (no network, no error output, recover mode, input declared
 * UTF-8 because message.c has already converted the part) and the tree is walked with parent
 * and sibling pointers, never by recursion, so a million nested elements cost no stack here.
 * A small renderer collapses whitespace, turns block elements into line breaks and prefixes
 * blockquote lines with "> " so that quote.c treats them as quoted text.
 *
 * OWNERSHIP  the libxml2 document lives only inside html_to_text().
 * DIAGNOSTICS  none: a document libxml2 cannot parse at all yields no text.
 */
#include "html.h"
#include "util.h"

#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>

enum html_kind { HTML_INLINE, HTML_SKIP, HTML_LINE, HTML_PARA, HTML_BREAK, HTML_QUOTE, HTML_PRE, HTML_CELL };

struct html_tag {
	const char *name;
	enum html_kind kind;
};

/* elements that are not inline text; everything unknown is inline */
static const struct html_tag html_tags[] = {
	{ "script", HTML_SKIP }, { "style", HTML_SKIP }, { "head", HTML_SKIP }, { "title", HTML_SKIP },
	{ "template", HTML_SKIP }, { "noframes", HTML_SKIP },
	{ "br", HTML_BREAK },
	{ "blockquote", HTML_QUOTE },
	{ "pre", HTML_PRE }, { "textarea", HTML_PRE }, { "listing", HTML_PRE }, { "xmp", HTML_PRE },
	{ "p", HTML_PARA }, { "h1", HTML_PARA }, { "h2", HTML_PARA }, { "h3", HTML_PARA },
	{ "h4", HTML_PARA }, { "h5", HTML_PARA }, { "h6", HTML_PARA }, { "ul", HTML_PARA },
	{ "ol", HTML_PARA }, { "dl", HTML_PARA }, { "table", HTML_PARA }, { "hr", HTML_PARA },
	{ "div", HTML_LINE }, { "li", HTML_LINE }, { "tr", HTML_LINE }, { "dt", HTML_LINE },
	{ "dd", HTML_LINE }, { "section", HTML_LINE }, { "article", HTML_LINE }, { "header", HTML_LINE },
	{ "footer", HTML_LINE }, { "address", HTML_LINE }, { "center", HTML_LINE }, { "form", HTML_LINE },
	{ "fieldset", HTML_LINE }, { "caption", HTML_LINE }, { "thead", HTML_LINE }, { "tbody", HTML_LINE },
	{ "nav", HTML_LINE }, { "main", HTML_LINE }, { "aside", HTML_LINE }, { "figure", HTML_LINE },
	{ "body", HTML_LINE }, { "html", HTML_LINE },
	{ "td", HTML_CELL }, { "th", HTML_CELL },
};

struct render {
	struct strbuf *out;
	int quote;            /* blockquote nesting */
	int pre;              /* <pre> nesting: whitespace kept */
	int newlines;         /* line breaks owed before the next text (2 = blank line) */
	bool space;           /* a space is owed before the next text */
	bool started;         /* some text was written */
};

static pthread_once_t html_once = PTHREAD_ONCE_INIT;

static void html_init_once(void)
{
	xmlInitParser();
}

void html_global_init(void)
{
	pthread_once(&html_once, html_init_once);
}

static enum html_kind tag_kind(const xmlChar *name)
{
	if (!name)
		return HTML_INLINE;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(html_tags); i++)
		if (!strcasecmp((const char *)name, html_tags[i].name))
			return html_tags[i].kind;
	return HTML_INLINE;
}

static void want_newlines(struct render *r, int n)
{
	if (r->newlines < n)
		r->newlines = n;
	r->space = false;
}

/* Write what is owed (line breaks and the quote prefix, or one space) before visible text. */
static void flush_owed(struct render *r)
{
	if (!r->started) {
		r->newlines = 0;
		r->space = false;
	}
	if (r->newlines) {
		for (int i = 0; i < r->newlines; i++)
			strbuf_putc(r->out, '\n');
		r->newlines = 0;
		for (int i = 0; i < r->quote; i++)
			strbuf_append(r->out, "> ", 2);
	} else if (!r->started) {
		for (int i = 0; i < r->quote; i++)
			strbuf_append(r->out, "> ", 2);
	} else if (r->space) {
		strbuf_putc(r->out, ' ');
	}
	r->space = false;
	r->started = true;
}

static bool html_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static void render_text(struct render *r, const unsigned char *s)
{
	while (*s && !r->out->truncated) {
		size_t run = 0;

		if (r->pre && (*s == '\n' || *s == '\r')) {
			if (*s == '\r' && s[1] == '\n')
				s++;
			s++;
			if (r->newlines < 2)
				r->newlines++;
			r->started = true;
			continue;
		}
		if (!r->pre && html_space(*s)) {
			r->space = true;
			s++;
			continue;
		}
		while (s[run] && (r->pre ? (s[run] != '\n' && s[run] != '\r') : !html_space(s[run])))
			run++;
		flush_owed(r);
		strbuf_append(r->out, (const char *)s, run);
		s += run;
	}
}

/* Entering an element. Returns whether its children are rendered. */
static bool enter(struct render *r, xmlNodePtr n)
{
	if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
		if (n->content)
			render_text(r, n->content);
		return false;
	}
	if (n->type != XML_ELEMENT_NODE)
		return n->type == XML_DOCUMENT_NODE || n->type == XML_HTML_DOCUMENT_NODE;
	switch (tag_kind(n->name)) {
	case HTML_SKIP:
		return false;
	case HTML_BREAK:
		if (r->newlines < 2)
			r->newlines++;
		r->space = false;
		r->started = true;
		return false;
	case HTML_QUOTE:
		want_newlines(r, 2);
		r->quote++;
		return true;
	case HTML_PRE:
		want_newlines(r, 1);
		r->pre++;
		return true;
	case HTML_PARA:
		want_newlines(r, 2);
		return true;
	case HTML_LINE:
		want_newlines(r, 1);
		return true;
	case HTML_CELL:
		r->space = true;
		return true;
	case HTML_INLINE:
		return true;
	}
	return true;
}

static void leave(struct render *r, xmlNodePtr n)
{
	if (n->type != XML_ELEMENT_NODE)
		return;
	switch (tag_kind(n->name)) {
	case HTML_QUOTE:
		if (r->quote > 0)
			r->quote--;
		want_newlines(r, 2);
		break;
	case HTML_PRE:
		if (r->pre > 0)
			r->pre--;
		want_newlines(r, 1);
		break;
	case HTML_PARA:
		want_newlines(r, 2);
		break;
	case HTML_LINE:
		want_newlines(r, 1);
		break;
	case HTML_CELL:
		r->space = true;
		break;
	default:
		break;
	}
}

/* Walk the tree in document order with parent/sibling links: no recursion, no stack. */
static void walk(struct render *r, xmlDocPtr doc)
{
	xmlNodePtr n = doc->children;

	while (n && !r->out->truncated) {
		if (enter(r, n) && n->children) {
			n = n->children;
			continue;
		}
		for (;;) {
			leave(r, n);
			if (n->next) {
				n = n->next;
				break;
			}
			n = n->parent;
			if (!n || n == (xmlNodePtr)doc) {
				n = NULL;
				break;
			}
		}
	}
}

int html_to_text(const char *html, size_t len, struct strbuf *out)
{
	struct render r = { .out = out };
	htmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	int size = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;

	html_global_init();
	if (!len)
		return 0;
	ctxt = htmlNewParserCtxt();
	if (!ctxt)
		return -1;
	doc = htmlCtxtReadMemory(ctxt, html, size, NULL, "UTF-8",
				 HTML_PARSE_RECOVER | HTML_PARSE_NONET | HTML_PARSE_NOERROR |
				 HTML_PARSE_NOWARNING | HTML_PARSE_COMPACT);
	if (doc) {
		walk(&r, doc);
		xmlFreeDoc(doc);
	}
	htmlFreeParserCtxt(ctxt);
	return out->oom ? -1 : 0;
}

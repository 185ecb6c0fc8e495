/*
 * lang.c - guess the language of a customer's text: en, ur, pa, fa, hi, ur-Latn, hi-Latn
 *
 * Script first: letters are counted per script (Latin, Arabic, Devanagari, Gurmukhi) and the
 * text goes by its dominant script, with Arabic/Indic letters counted double, because an Urdu or
 * Hindi message is full of English product words, order numbers and addresses while an English
 * message seldom carries a word of Urdu script. Gurmukhi is pa, Devanagari hi. Arabic script is
 * Urdu or Persian: letters only Urdu has (ٹ ڈ ڑ ں ے ھ ہ ۃ) and Persian's ۀ, then function words
 * and verb forms each language uses and the other does not. The word lists are compared after a
 * light folding (ي ى ئ -> ی, ك -> ک, ZWNJ and harakat removed) so windows-1256 and ISO-8859-6
 * mail, which lacks ی, ک and ZWNJ, meets them; ہ and ه are NOT folded here (Urdu vs Persian).
 * Latin script is English unless enough romanized Urdu/Hindi markers appear; then Urdu- and
 * Hindi-leaning spellings and words decide (wapis/bohat/aik/thay, words ending in "ay" and a
 * q for ق, and detached future "kar dun ga" lean Urdu; wapas/bahut/ek/hu, joined "aapka" and
 * ₹/UPI/GST lean Hindi).
 * Works on raw or normalized text; invalid UTF-8 bytes are skipped. Time and memory: one pass
 * over the first LANG_MAX_TOKENS words at most (the customer's own words come first; a long
 * pasted document after them does not change the language of the letter), a fixed token
 * buffer on the stack, words looked up in one static hash table of all the lists (built once,
 * on first use).
 *
 * OWNERSHIP  Returns static strings.
 * DIAGNOSTICS  None.
 */
#include "lang.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define LANG_MAX_TOKENS 4000
#define LANG_TOKEN_BYTES 96

/* ---- word lists (folded spelling, see lang_arabic_fold) -------------------------------------- */

/* Urdu function words, auxiliaries and pronouns Persian does not use. */
static const char *const lang_ur_words[] = {
	"ہے", "ہیں", "ہوں", "ہو", "ہوا", "ہوئی", "ہوئے", "ہوگا", "ہوگی", "تھا", "تھی", "تھے", "تھیں",
	"کا", "کی", "کے", "میں", "نہیں", "اور", "سے", "کو", "نے", "یہ", "وہ", "کہ", "بھی", "ہی",
	"آپ", "ہم", "ہمیں", "ہمارا", "ہماری", "ہمارے", "میرا", "میری", "میرے", "مجھے", "تم",
	"تمہارا", "تمہاری", "تمہارے", "اس", "ان", "انہوں", "جو", "کر", "کیا", "کیوں", "کیسے",
	"لیکن", "مگر", "گا", "گی", "گے", "رہا", "رہی", "رہے", "سکتا", "سکتی", "سکتے", "چاہیے",
	"دیں", "کریں", "کردیں", "والا", "والی", "والے", "لیے", "لئے", "ساتھ", "پہلے", "بعد",
	"جناب", "براہ", "مہربانی", "شکریہ", "ایک", "کچھ", "کوئی", "اب", "ابھی", "یہاں", "وہاں",
	"پیسے", "واپس", "دن", "بار", "دفعہ",
};

/* Persian function words, copulas, pronouns and verb forms Urdu does not use. */
static const char *const lang_fa_words[] = {
	"است", "هست", "نیست", "هستم", "هستید", "هستند", "بود", "بودم", "بودند", "شد", "شده",
	"شود", "میشود", "نمیشود", "را", "از", "به", "که", "این", "آن", "با", "برای", "هم", "ما",
	"شما", "من", "او", "آنها", "اینکه", "چه", "چرا", "ولی", "اما", "باید", "خیلی", "لطفا",
	"لطفاً", "ممنون", "متشکرم", "مرسی", "دارم", "دارید", "دارد", "داریم", "کنم", "کنید", "کند",
	"کنیم", "کرد", "کردم", "کردیم", "کرده", "کردهام", "میخواهم", "نمیخواهم", "خواهم", "می",
	"نمی", "های", "ها", "تا", "یک", "چون", "همه", "هیچ", "الان", "چطور", "کجا", "پول", "هنوز",
	"دیگر", "وقتی", "بدون", "اگه", "رو", "یه", "بهم", "دیگه", "خودم", "شماره", "سلام",
	"روز", "بار", "تومان", "ریال",
};

/* Romanized Urdu/Hindi words no English sentence uses (ambiguous ones such as to, me, is,
 * main, do, hi, par, the are left out). */
static const char *const lang_rm_words[] = {
	"hai", "hain", "hay", "hy", "nahi", "nahin", "nai", "kya", "kia", "kyun", "kyu", "kyon",
	"kyunki", "mera", "meri", "mere", "mujhe", "mujh", "mjhe", "aap", "ap", "apna", "apni", "apne",
	"tum", "tumhara", "tumhari", "tumhare", "hum", "hamara", "hamari", "hamare", "kar", "karo",
	"karna", "karni", "karne", "karein", "karen", "kiya", "kiye", "kr", "ho", "hoga", "hogi",
	"hua", "hui", "hue", "tha", "thi", "gaya", "gayi", "gaye", "raha", "rahi", "rahe", "bhai",
	"yaar", "yar", "ke", "ki", "ka", "ko", "se", "ne", "mein", "bhi", "aur", "lekin", "abhi",
	"koi", "kuch", "kuchh", "sab", "sirf", "bas", "wala", "wali", "wale", "liye", "diya", "diye",
	"dena", "bata", "batao", "chahiye", "chahie", "chahta", "chahti", "jaldi", "pehle", "baad",
	"saath", "sath", "hota", "hoti", "hote", "jata", "jati", "ye", "yeh", "wo", "woh", "vo",
	"us", "un", "jo", "agar", "phir", "fir", "kal", "aaj", "din", "mahine", "mahina", "saal",
	"baar", "paisa", "theek", "thik", "acha", "achha", "accha", "bilkul", "zaroor", "zarur",
	"ji", "jee", "sahab", "sahib", "khatam", "band", "shikayat", "galat", "galti", "bakwas",
	"bakwaas", "log", "logon", "logo", "kaun", "kaise", "kaisa", "kab", "kahan", "yahan",
	"matlab", "sawal", "jawab", "pata", "samajh", "dekh", "dekho", "bolo", "keh", "lagta",
	"mil", "mila", "mili", "milega", "milta", "toh", "naam", "kaam", "ghar", "saman", "samaan",
	"chor", "ek", "aik", "hun", "hu", "hoon", "dein", "dijiye", "kijiye", "karunga", "dunga",
	"jayega", "jayegi", "wapas", "wapis", "bahut", "bohat", "bohot", "paise", "paisay", "thay",
	"humara", "humari", "humare", "aapka", "aapki", "aapke", "apka", "apki", "apke", "isliye",
	"nikamme", "ghatiya", "mujhse", "unka", "unki", "unke", "uska", "uski", "uske", "iska",
	"hafte", "ghanta", "ghante", "chuka", "chuki", "sakta", "sakti", "sakte", "rakho", "rakhna",
};

static const char *const lang_ur_lean[] = {
	"shukriya", "shukria", "mehrbani", "meherbani", "meharbani", "janab", "janaab", "ghalat",
	"ghalti", "paisay", "wapis", "bohat", "bohot", "aik", "hun", "thay", "karain", "jayein",
	"assalam", "salam", "aoa", "wassalam", "allah", "inshallah", "mashallah", "khuda", "masla",
	"mukammal", "mohtaram", "tareeqa", "tareeka", "dafa", "raqam", "foran", "fauran", "waqt",
	"magar", "halanke", "halankay", "thora", "thori", "bara", "bari", "baray", "parta", "parti",
	"pari", "larka", "larki", "parh", "hamaray", "tumharay", "mahinay", "kapray", "lagay",
	"pehlay", "mujhay", "aisay", "jaisay", "kaisay", "huay", "rahay", "jazzcash", "easypaisa",
	"pkr", "cnic", "ntn", "darkhwast", "guzarish", "ittila", "bhejain", "dain", "zimmedari",
	"jahannum", "nalaiq", "nalaik", "ghairat", "beghairat", "zaleel", "khabees", "lanat",
	"beshak", "darasal", "taqreeban", "fori", "mutabiq", "barae", "baraye", "maloomat",
	"idara", "muamla", "waqia", "zahir", "intezar", "intizar",
	/* family and greetings as Pakistani mail writes them */
	"abbu", "ammi", "abba", "ammee", "alaikum", "alaykum", "hafiz",
	/* Urdu vocabulary Hinglish says otherwise ("anubhav", "gussa", "kaaran", "tameez" aside) */
	"jahil", "jahilon", "tajurba", "tajruba", "wajah", "wajeh", "ghussa", "afsos", "badtameez",
	"badtameezi", "khayal", "khiyal", "ilawa", "alawa", "sahulat", "khidmat", "ijazat",
	"mulazim", "mulazmeen", "loadshedding",
};

static const char *const lang_hi_lean[] = {
	"dhanyavaad", "dhanyavad", "dhanyawad", "dhanyawaad", "kripya", "krupya", "kripaya",
	"vaapas", "vapas", "wapas", "nahin", "bahut", "kyunki", "ekdum", "ekdam", "bhaiya", "ji",
	"namaste", "namaskar", "ek", "hu", "toh", "humara", "humari", "humare", "aapka", "aapki",
	"aapke", "apka", "apki", "apke", "isliye", "dijiye", "kijiye", "karunga", "karungi",
	"dunga", "dungi", "denge", "karenge", "milega", "thoda", "thodi", "bada",
	"badi", "bade", "padta", "padti", "pada", "padi", "ladka", "ladki", "padh", "turant",
	"samay", "seva", "shulk", "rashi", "upi", "gst", "gstin", "paytm", "phonepe", "aadhaar",
	"ifsc", "acche", "achhe", "accha", "bolna", "unhone",
	"lagatar", "samasya", "suvidha", "asuvidha", "prabandhak", "kshama", "vishwas", "jankari",
	"sampark", "bhugtan", "abe", "saale", "saala", "paani", "baaki",
	/* Hindi romanization joins pronoun and postposition: "maine", "uska", "isko" */
	"maine", "humne", "tumne", "aapne", "usne", "isne", "unhone", "inhone", "iska", "iski",
	"iske", "uska", "uski", "uske", "inka", "inki", "inke", "unka", "unki", "unke", "kisko", "jisko", "sabko", "mujhko", "tujhko", "isme", "usme",
	"ismein", "usmein", "jisme", "kisme",
};

static const char *const lang_pronouns[] = {
	"aap", "ap", "main", "hum", "tum", "us", "is", "un", "in", "jis", "kis", "mujh",
};

/* English words spelt as lang_urdu_spelling expects of Urdu romanization. */
static const char *const lang_en_spelt[] = {
	"today", "delay", "essay", "relay", "array", "spray", "stray", "decay", "repay", "replay",
	"betray", "portray", "display", "holiday", "birthday", "monday", "tuesday", "wednesday",
	"thursday", "friday", "saturday", "sunday", "weekday", "someday", "everyday", "yesterday",
	"anyway", "railway", "highway", "gateway", "subway", "runway", "doorway", "hallway",
	"midway", "halfway", "payday", "underway", "pathway", "driveway", "giveaway", "takeaway",
	"getaway", "mayday", "paypal", "ebay",
	"qty", "faq", "faqs", "qwerty", "sql", "iraq", "iraqi", "qatar", "qos",
};

/* English words a romanized Urdu/Hindi sentence does not use. */
static const char *const lang_en_words[] = {
	"the", "and", "or", "are", "was", "were", "be", "been", "of", "in", "on", "at", "for", "with",
	"from", "by", "this", "that", "these", "those", "it", "its", "i", "you", "your", "my", "we",
	"our", "they", "their", "he", "she", "his", "her", "not", "does", "did", "don", "have",
	"has", "had", "will", "would", "can", "could", "should", "thank", "if", "but", "as",
	"just", "all", "any", "what", "when", "where", "why", "how", "there", "here", "about",
	"again", "still", "also", "than", "then", "which", "who", "am", "into", "out", "off",
	"after", "before", "because", "an", "a", "want", "get", "got", "been", "very", "more",
	"some", "now", "one", "back", "know", "like", "only", "over", "even", "never", "ever",
	"every", "same", "said", "says", "it's", "i'm", "you're", "won", "isn", "wasn", "doesn",
	"didn", "can't", "haven", "yours", "sincerely", "regards", "dear", "kind", "sorry",
	"received", "today", "yesterday", "tomorrow", "week", "month", "them", "him", "up",
};

/* ---- small helpers ----------------------------------------------------------------------- */

/* Decode one UTF-8 sequence at p (n bytes left); returns its length, 0 for an invalid byte. */
static size_t lang_u8(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t l, k;
	uint32_t c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		l = 2;
		c = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		l = 3;
		c = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		l = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (l > n)
		return 0;
	for (k = 1; k < l; k++) {
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (p[k] & 0x3F);
	}
	*cp = c;
	return l;
}

static size_t lang_put_u8(char *d, uint32_t c)
{
	if (c < 0x80) {
		d[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		d[0] = (char)(0xC0 | (c >> 6));
		d[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	d[0] = (char)(0xE0 | (c >> 12));
	d[1] = (char)(0x80 | ((c >> 6) & 0x3F));
	d[2] = (char)(0x80 | (c & 0x3F));
	return 3;
}

/* ---- the word set: every list in one hash table, built once ------------------------------- */

/* Which lists a word is on (a word may be on several). */
enum {
	LW_UR = 1 << 0, LW_FA = 1 << 1, LW_RM = 1 << 2, LW_UR_LEAN = 1 << 3, LW_HI_LEAN = 1 << 4,
	LW_PRON = 1 << 5, LW_EN = 1 << 6, LW_EN_SPELT = 1 << 7,
};

#define LANG_LEN(list) (sizeof(list) / sizeof((list)[0]))
#define LANG_N_WORDS (LANG_LEN(lang_ur_words) + LANG_LEN(lang_fa_words) + \
	LANG_LEN(lang_rm_words) + LANG_LEN(lang_ur_lean) + LANG_LEN(lang_hi_lean) + \
	LANG_LEN(lang_pronouns) + LANG_LEN(lang_en_words) + LANG_LEN(lang_en_spelt))
#define LANG_SET_SIZE 2048   /* a power of two, at least twice the words: probes stay short */
_Static_assert(LANG_N_WORDS * 2 <= LANG_SET_SIZE, "LANG_SET_SIZE too small for the word lists");

struct lang_set_entry {
	const char *w;          /* NULL: empty slot */
	unsigned lists;         /* LW_* */
};

static struct lang_set_entry lang_set[LANG_SET_SIZE];
static pthread_once_t lang_set_once = PTHREAD_ONCE_INIT;

/* lang_set_slot - the slot of w, or the empty slot where it would go (the table never fills) */
static struct lang_set_entry *lang_set_slot(const char *w)
{
	size_t i = util_hash_str(w) & (LANG_SET_SIZE - 1);

	while (lang_set[i].w && strcmp(lang_set[i].w, w) != 0)
		i = (i + 1) & (LANG_SET_SIZE - 1);
	return &lang_set[i];
}

static void lang_set_add(const char *const *list, size_t n, unsigned bit)
{
	for (size_t i = 0; i < n; i++) {
		struct lang_set_entry *e = lang_set_slot(list[i]);

		e->w = list[i];
		e->lists |= bit;
	}
}

static void lang_set_build(void)
{
	lang_set_add(lang_ur_words, LANG_LEN(lang_ur_words), LW_UR);
	lang_set_add(lang_fa_words, LANG_LEN(lang_fa_words), LW_FA);
	lang_set_add(lang_rm_words, LANG_LEN(lang_rm_words), LW_RM);
	lang_set_add(lang_ur_lean, LANG_LEN(lang_ur_lean), LW_UR_LEAN);
	lang_set_add(lang_hi_lean, LANG_LEN(lang_hi_lean), LW_HI_LEAN);
	lang_set_add(lang_pronouns, LANG_LEN(lang_pronouns), LW_PRON);
	lang_set_add(lang_en_words, LANG_LEN(lang_en_words), LW_EN);
	lang_set_add(lang_en_spelt, LANG_LEN(lang_en_spelt), LW_EN_SPELT);
}

/* lang_lists - the LW_* lists w is on (one hash and a short probe instead of scanning every
 * list: the scans were most of lang_detect's time) */
static unsigned lang_lists(const char *w)
{
	return lang_set_slot(w)->lists;
}

enum lang_script { LS_NONE, LS_LATIN, LS_ARABIC, LS_DEVA, LS_GURU };

static enum lang_script lang_script_of(uint32_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7))
		return LS_LATIN;
	if ((c >= 0x0620 && c <= 0x064A) || (c >= 0x066E && c <= 0x06D3) || c == 0x06D5 ||
	    (c >= 0x06EE && c <= 0x06EF) || (c >= 0x06FA && c <= 0x06FF) ||
	    (c >= 0x0750 && c <= 0x077F) || (c >= 0xFB50 && c <= 0xFDFF) ||
	    (c >= 0xFE70 && c <= 0xFEFC))
		return LS_ARABIC;
	if (c >= 0x0900 && c <= 0x097F && !(c >= 0x0964 && c <= 0x096F))
		return LS_DEVA;
	if (c >= 0x0A00 && c <= 0x0A7F && !(c >= 0x0A66 && c <= 0x0A6F))
		return LS_GURU;
	return LS_NONE;
}

/* Letters only Urdu writes. */
static bool lang_urdu_letter(uint32_t c)
{
	return c == 0x0679 || c == 0x0688 || c == 0x0691 || c == 0x06BA || c == 0x06BB ||
		c == 0x06D2 || c == 0x06D3 || c == 0x06BE || c == 0x06C1 || c == 0x06C2 ||
		c == 0x06C3;
}

/* Light folding for the word lists: keeps ہ/ه and ے apart, joins across ZWNJ. Returns 0 to
 * drop the code point. */
static uint32_t lang_arabic_fold(uint32_t c)
{
	switch (c) {
	case 0x064A: case 0x0649: case 0x0626: return 0x06CC;
	case 0x0643: return 0x06A9;
	case 0x0623: case 0x0625: return 0x0627;
	case 0x06C0: return 0x0647;
	case 0x200C: case 0x200D: case 0x0640: return 0;
	default:
		if ((c >= 0x064B && c <= 0x065F) || c == 0x0670)
			return 0;
		return c;
	}
}

/* ---- scoring ----------------------------------------------------------------------------- */

struct lang_scan {
	size_t letters[5];       /* per enum lang_script */
	int ur, fa;              /* Arabic script cues */
	int en, rm, ur_lean, hi_lean;
	size_t tokens;
	bool after_word;         /* the previous Latin token was a word (for "dun ga") */
	bool after_pron;         /* the previous Latin token was a pronoun (for "aap ka") */
};

static void lang_arabic_token(struct lang_scan *sc, const char *w, bool urdu_letters)
{
	size_t l = strlen(w);
	unsigned on = lang_lists(w);

	if (urdu_letters)
		sc->ur += 1;
	if (on & LW_UR)
		sc->ur += 2;
	if (on & LW_FA)
		sc->fa += 2;
	/* Persian present-tense verbs: می/نمی + stem + personal ending (میکنم, نمیشود) */
	if (!urdu_letters && l >= 8 && (strncmp(w, "می", 4) == 0 || strncmp(w, "نمی", 6) == 0)) {
		const char *end = w + l - 2;

		if (strcmp(end, "م") == 0 || strcmp(end, "د") == 0)
			sc->fa += 1;
	}
}

/* Spellings of Urdu romanization rather than words: ے written "ay" at the end of a word
 * ("patthay", "nikammay", "karay", "hotay", where Hinglish writes "patthe", "kare", "hote"), and
 * ق written "q" before anything but "u" ("baqi", "waqt", "bewaqoof", "nuqsan", "haq", where
 * Hinglish writes "baaki", "bewakoof", "nuksan", "hak"). English words spelt so are on
 * lang_en_words or lang_en_spelt, or shorter. */
static bool lang_urdu_spelling(const char *w, size_t l, unsigned on)
{
	const char *q;

	if (on & (LW_EN | LW_EN_SPELT))
		return false;
	if (l >= 5 && w[l - 2] == 'a' && w[l - 1] == 'y')
		return true;
	q = l >= 3 ? strchr(w, 'q') : NULL;
	return q && q[1] != 'u';
}

static void lang_latin_token(struct lang_scan *sc, const char *w)
{
	size_t l = strlen(w);
	unsigned on = lang_lists(w);
	bool rm = (on & LW_RM) != 0;

	if (on & LW_EN)
		sc->en++;
	if (rm)
		sc->rm++;
	if (on & LW_UR_LEAN) {
		sc->ur_lean++;
		if (!rm)
			sc->rm++;
	}
	if (on & LW_HI_LEAN) {
		sc->hi_lean++;
		if (!rm)
			sc->rm++;
	}
	if (!(on & LW_UR_LEAN) && lang_urdu_spelling(w, l, on))
		sc->ur_lean++;
	/* Urdu romanization writes the future suffix apart: "kar dun ga", "ho jaye gi" */
	if (l == 2 && w[0] == 'g' && (w[1] == 'a' || w[1] == 'i' || w[1] == 'e') && sc->after_word)
		sc->ur_lean += 2;
	/* ... and postpositions too: "aap ka", "us ne", "main ne" where Hindi writes "aapka",
	 * "usne", "maine" */
	if (sc->after_pron && (strcmp(w, "ka") == 0 || strcmp(w, "ki") == 0 ||
	    strcmp(w, "ke") == 0 || strcmp(w, "ko") == 0 || strcmp(w, "ne") == 0))
		sc->ur_lean++;
	sc->after_pron = (on & LW_PRON) != 0;
}

/* Hand a finished token to its scorer. */
static void lang_flush(struct lang_scan *sc, char *tok, size_t *tl, enum lang_script s,
	bool urdu_letters)
{
	if (*tl == 0)
		return;
	tok[*tl] = '\0';
	if (sc->tokens < LANG_MAX_TOKENS) {
		sc->tokens++;
		if (s == LS_ARABIC)
			lang_arabic_token(sc, tok, urdu_letters);
		else if (s == LS_LATIN)
			lang_latin_token(sc, tok);
	}
	sc->after_word = s == LS_LATIN;
	*tl = 0;
}

/* The rest of a Devanagari (lead 0xA4) or Gurmukhi (0xA8) word at p: the bytes of its letters
 * (as lang_script_of counts them: the block, but not its danda and digits), 3 each. Only their
 * number matters, so they need not go through the general path one by one. */
static size_t lang_indic_run(const unsigned char *p, size_t n, unsigned lead)
{
	unsigned digits_from = lead == 0xA4 ? 0xA4 : 0xA6;   /* U+0964.., U+0A66.. */
	size_t k = 0;

	while (n - k >= 3 && p[k] == 0xE0 && (p[k + 1] == lead || p[k + 1] == lead + 1) &&
	       (p[k + 2] & 0xC0) == 0x80 &&
	       !(p[k + 1] == lead + 1 && p[k + 2] >= digits_from && p[k + 2] <= 0xAF))
		k += 3;
	return k;
}

static void lang_scan_text(struct lang_scan *sc, const unsigned char *p, size_t n)
{
	char tok[LANG_TOKEN_BYTES + 4];
	size_t i = 0, tl = 0, l;
	enum lang_script ts = LS_NONE, s;
	bool urdu_letters = false;
	uint32_t c;

	while (i < n && sc->tokens < LANG_MAX_TOKENS) {
		/* inside a word, its ASCII letters and Indic letters go the short way */
		if (ts == LS_LATIN && ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'z')) {
			sc->letters[LS_LATIN]++;
			if (tl + 1 <= LANG_TOKEN_BYTES)
				tok[tl++] = (char)(p[i] | 0x20);
			i++;
			continue;
		}
		if ((ts == LS_DEVA || ts == LS_GURU) && p[i] == 0xE0) {
			size_t run = lang_indic_run(p + i, n - i, ts == LS_DEVA ? 0xA4 : 0xA8);

			if (run) {
				sc->letters[ts] += run / 3;
				i += run;
				continue;
			}
		}
		l = lang_u8(p + i, n - i, &c);
		if (l == 0) {
			i++;
			continue;
		}
		i += l;
		if (c == 0x20B9) /* ₹ */
			sc->hi_lean += 2;
		s = lang_script_of(c);
		if (c == 0x200C || c == 0x200D || c == 0x0640 || (c >= 0x064B && c <= 0x065F) ||
		    c == 0x0670) {
			if (c == 0x200C && ts == LS_ARABIC)
				sc->fa++; /* Persian writes ZWNJ inside words all the time */
			continue;   /* inside a word: neither letter nor separator */
		}
		if (c == '\'' && ts == LS_LATIN)
			continue;   /* don't, it's */
		if (s == LS_NONE || s != ts) {
			lang_flush(sc, tok, &tl, ts, urdu_letters);
			urdu_letters = false;
			if (s == LS_NONE) {
				if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
					sc->after_word = false; /* punctuation breaks "dun ga" */
				ts = LS_NONE;
				continue;
			}
			ts = s;
		}
		sc->letters[s]++;
		if (s == LS_ARABIC) {
			if (lang_urdu_letter(c))
				urdu_letters = true;
			if (c == 0x06C0)
				sc->fa += 2; /* ۀ: Persian ezafe he */
			c = lang_arabic_fold(c);
			if (c && tl + 3 <= LANG_TOKEN_BYTES)
				tl += lang_put_u8(tok + tl, c);
		} else if (s == LS_LATIN) {
			if (c < 0x80 && tl + 1 <= LANG_TOKEN_BYTES)
				tok[tl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		else if (tl == 0)
			tok[tl++] = '*';   /* Devanagari, Gurmukhi: only their letters are counted,
					    * but the word must count as a token (LANG_MAX_TOKENS) */
	}
	lang_flush(sc, tok, &tl, ts, urdu_letters);
}

static const char *lang_latin_verdict(const struct lang_scan *sc)
{
	/* Romanized when its markers are not a stray word or two inside English */
	if (sc->rm < 2 || sc->rm < sc->en / 2 || (sc->rm < 3 && sc->rm < sc->en))
		return "en";
	/* no lean either way: Hinglish is the more common of the two in mail */
	return sc->ur_lean > sc->hi_lean ? "ur-Latn" : "hi-Latn";
}

const char *lang_detect(const char *text, size_t len)
{
	struct lang_scan sc;
	size_t latin, arabic, deva, guru, best;

	memset(&sc, 0, sizeof(sc));
	if (!text)
		return "und";
	/* Failure (it cannot fail once started) would leave the table empty: every word unknown. */
	(void)pthread_once(&lang_set_once, lang_set_build);
	lang_scan_text(&sc, (const unsigned char *)text, len);
	latin = sc.letters[LS_LATIN];
	arabic = sc.letters[LS_ARABIC] * 2;
	deva = sc.letters[LS_DEVA] * 2;
	guru = sc.letters[LS_GURU] * 2;
	best = latin;
	if (arabic > best)
		best = arabic;
	if (deva > best)
		best = deva;
	if (guru > best)
		best = guru;
	if (best == 0)
		return "und";
	if (best == guru)
		return "pa";
	if (best == deva)
		return "hi";
	if (best == arabic)
		return sc.fa > sc.ur ? "fa" : "ur"; /* a tie is Urdu: it has more speakers writing mail */
	return lang_latin_verdict(&sc);
}

const char *lang_base(const char *code)
{
	if (!code)
		return "und";
	if (strcmp(code, "ur-Latn") == 0)
		return "ur";
	if (strcmp(code, "hi-Latn") == 0)
		return "hi";
	return code;
}

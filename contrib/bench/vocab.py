"""vocab.py - word lists of customer mail in the scripts amends reads, for the bench generators

Shared by gen_mail.py (message text) and gen_rules.py (rule alternations). Words are lower
case and already what normalization leaves (the generators need no folding of their own).
Scripts: Latin (English and romanized Urdu/Hindi), Arabic (Urdu and Persian), Gurmukhi
(Punjabi), Devanagari (Hindi).
"""

WORDS = {
    "en": """refund money back cancel account order delivery parcel broken damaged late never
        arrived complaint manager service terrible awful invoice receipt fake review subscription
        contract charge fee waive return replacement courier driver support again still waiting
        please immediately today stop close disappointed unacceptable rubbish useless months
        weeks promised billing overcharged chargeback lawyer court""".split(),
    "ro": """paise paisay wapas wapis vapas karo kar do dijiye band khatam shikayat bakwas ghatiya
        bekar order delivery abhi tak nahi nahin mila aaya phir se bilkul pakka jaldi account
        refund bhai yaar kabhi dobara mat chahiye chahie galat tuta toota kharab""".split(),
    "ar": """پیسے رقم واپس کریں کر دیں شکایت بند اکاؤنٹ آرڈر سفارش خراب دیر ابھی تک نہیں ملا
        پھر بار فوری براہ مہربانی پول برگردانید لغو اشتراک حساب بسته سفارشم نرسیده هنوز
        بازپرداخت شکایتی کیفیت بدترین مدیر فاکتور جعلی رسید""".split(),
    "pa": """ਪੈਸੇ ਵਾਪਸ ਕਰੋ ਕਰ ਦਿਓ ਸ਼ਿਕਾਇਤ ਬੰਦ ਖਾਤਾ ਆਰਡਰ ਖ਼ਰਾਬ ਦੇਰ ਹਾਲੇ ਤੱਕ ਨਹੀਂ ਮਿਲਿਆ ਫਿਰ
        ਵਾਰ ਜਲਦੀ ਕਿਰਪਾ ਰੱਦ ਬਿੱਲ ਰਸੀਦ ਨਕਲੀ ਗਾਹਕ ਸੇਵਾ ਮਾੜੀ ਟੁੱਟਿਆ ਡਿਲੀਵਰੀ ਮੈਨੇਜਰ ਕਦੇ""".split(),
    "hi": """पैसे वापस करो कर दीजिए शिकायत बंद खाता ऑर्डर खराब देर अभी तक नहीं मिला फिर बार
        जल्दी कृपया रद्द बिल रसीद नकली सदस्यता ग्राहक सेवा बेकार टूटा डिलीवरी मैनेजर कभी""".split(),
}

# Everyday words that surround the cues in running text.
FILLER = {
    "en": """the i my we you it is was have had this that and but for with on at from your our
        order number last week yesterday thank regards hello dear team about when will can""".split(),
    "ro": """main mera meri aap hum yeh woh hai tha ki ka ke ko se par aur lekin kal parson
        shukriya salam order number please""".split(),
    "ar": """میں میرا آپ ہم یہ وہ ہے تھا کی کا کے کو سے پر اور لیکن کل من شما این آن است بود
        را به از با و اما دیروز شکریہ سلام""".split(),
    "pa": """ਮੈਂ ਮੇਰਾ ਤੁਸੀਂ ਅਸੀਂ ਇਹ ਉਹ ਹੈ ਸੀ ਦੀ ਦਾ ਦੇ ਨੂੰ ਤੋਂ ਤੇ ਅਤੇ ਪਰ ਕੱਲ੍ਹ ਧੰਨਵਾਦ
        ਸਤਿ ਸ੍ਰੀ ਅਕਾਲ""".split(),
    "hi": """मैं मेरा आप हम यह वह है था की का के को से पर और लेकिन कल धन्यवाद नमस्ते""".split(),
}

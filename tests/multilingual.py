"""A small multilingual sample for the token estimate: support-desk and everyday sentences written for this
test (not taken from a corpus), several per script, some mixed with ASCII words and code, keyed by a
script label. ``tests/unit/test_estimate.py`` holds ``cost``'s estimate to o200k counts over them."""

SAMPLES: dict[str, list[str]] = {
    "en": [
        "Since yesterday's update I can't log in to my account, even though the password is definitely right.",
        "Please prepare the sales report for the third quarter by Friday and send it to the whole team.",
        "This item is temporarily out of stock; delivery will take about two weeks. Sorry for the wait!",
        "def average(orders):\n    return sum(o.total for o in orders) / len(orders)  # mean order value\n",
    ],
    "zh": [
        "我们的系统在昨晚升级之后，用户无法登录账户，请尽快帮我们检查服务器日志并告诉我们原因。",
        "这份季度报告显示，华东地区的销售额比去年同期增长了百分之十二，但利润率有所下降。",
        "请把下面这段话翻译成英文，并保持原文的语气：感谢您一直以来的支持与信任。",
        "如果明天下雨，我们就把户外活动改到会议室举行，同时通知所有参加的同事。",
        "我上周五下单的耳机到现在还没有发货，订单页面一直显示“处理中”，能帮我查一下吗？",
    ],
    "ja": [
        "昨日からアプリにログインできません。パスワードを再設定しても同じエラーが表示されます。",
        "来週の会議の資料を金曜日までに準備して、チームの全員に共有してください。",
        "この商品は在庫切れのため、お届けまで二週間ほどかかる見込みです。ご了承ください。",
        "東京駅から新幹線に乗って、大阪で友人と一緒に美味しいお好み焼きを食べました。",
        "請求書の金額が先月と違っているようなので、明細を確認していただけますか。",
    ],
    "ko": [
        "어제 업데이트 이후로 앱에 로그인할 수 없습니다. 비밀번호를 바꿔도 같은 오류가 나옵니다.",
        "다음 주 회의 자료를 금요일까지 준비해서 팀원 모두에게 공유해 주세요.",
        "이 제품은 현재 재고가 없어서 배송까지 약 2주 정도 걸릴 예정입니다.",
        "주말에 친구들과 함께 한강 공원에서 자전거를 타고 치킨을 먹었어요.",
        "지난달 청구서 금액이 평소보다 많이 나왔는데, 자세한 내역을 확인해 주실 수 있나요?",
    ],
    "ru": [
        "После вчерашнего обновления я не могу войти в свою учётную запись, хотя пароль точно правильный.",
        "Пожалуйста, подготовьте отчёт о продажах за третий квартал к пятнице и отправьте его всей команде.",
        "Этот товар временно отсутствует на складе, доставка займёт примерно две недели.",
        "В выходные мы с друзьями ездили за город, жарили шашлыки и играли в волейбол.",
    ],
    "ar": [
        "لا أستطيع تسجيل الدخول إلى حسابي منذ التحديث الأخير، رغم أنني غيرت كلمة المرور مرتين.",
        "يرجى إعداد تقرير المبيعات للربع الثالث قبل يوم الجمعة وإرساله إلى جميع أعضاء الفريق.",
        "هذا المنتج غير متوفر حالياً في المخزن، وسيستغرق التوصيل حوالي أسبوعين.",
        "ذهبنا في عطلة نهاية الأسبوع إلى البحر وتناولنا السمك المشوي مع العائلة.",
    ],
    "he": [
        "מאז העדכון של אתמול אני לא מצליח להתחבר לחשבון שלי, למרות שהסיסמה נכונה.",
        "אנא הכינו את דוח המכירות של הרבעון השלישי עד יום שישי ושלחו אותו לכל הצוות.",
        "המוצר הזה אזל מהמלאי כרגע, והמשלוח ייקח בערך שבועיים.",
    ],
    "hi": [
        "कल रात के अपडेट के बाद से मैं अपने खाते में लॉग इन नहीं कर पा रहा हूँ, कृपया मदद करें।",
        "कृपया शुक्रवार तक तीसरी तिमाही की बिक्री रिपोर्ट तैयार करें और पूरी टीम को भेज दें।",
        "यह उत्पाद अभी स्टॉक में नहीं है, इसलिए डिलीवरी में लगभग दो सप्ताह लगेंगे।",
        "सप्ताहांत में हम दोस्तों के साथ पहाड़ों पर घूमने गए और बहुत मज़ा किया।",
    ],
    "el": [
        "Από την χθεσινή ενημέρωση δεν μπορώ να συνδεθώ στον λογαριασμό μου, παρόλο που ο κωδικός είναι σωστός.",
        "Παρακαλώ ετοιμάστε την αναφορά πωλήσεων του τρίτου τριμήνου μέχρι την Παρασκευή.",
        "Αυτό το προϊόν δεν είναι διαθέσιμο αυτή τη στιγμή και η παράδοση θα διαρκέσει δύο εβδομάδες.",
        "Το Σαββατοκύριακο πήγαμε με φίλους στη θάλασσα και φάγαμε ψητό ψάρι.",
    ],
    "th": [
        "ตั้งแต่อัปเดตเมื่อวานนี้ ฉันไม่สามารถเข้าสู่ระบบบัญชีของฉันได้ แม้ว่าจะเปลี่ยนรหัสผ่านแล้วก็ตาม",
        "กรุณาเตรียมรายงานยอดขายไตรมาสที่สามให้เสร็จภายในวันศุกร์ และส่งให้ทุกคนในทีม",
        "สินค้านี้หมดสต็อกชั่วคราว การจัดส่งจะใช้เวลาประมาณสองสัปดาห์",
        "เมื่อสุดสัปดาห์ที่ผ่านมา เราไปเที่ยวทะเลกับเพื่อนและกินอาหารทะเลอร่อยมาก",
    ],
    "de": [
        "Seit dem gestrigen Update kann ich mich nicht mehr in mein Konto einloggen, obwohl das Passwort stimmt.",
        "Bitte bereiten Sie den Umsatzbericht für das dritte Quartal bis Freitag vor und schicken Sie ihn an das Team.",
        "Dieser Artikel ist vorübergehend nicht vorrätig; die Lieferung dauert etwa zwei Wochen.",
    ],
    "fr": [
        "Depuis la mise à jour d'hier, je ne peux plus me connecter à mon compte, même après avoir changé le mot de passe.",
        "Nous avons passé le week-end à la montagne et mangé une fondue délicieuse avec nos amis.",
        "Pourriez-vous vérifier ma facture ? Le montant prélevé ne correspond pas à celui du mois dernier.",
    ],
    "vi": [
        "Từ sau bản cập nhật hôm qua, tôi không thể đăng nhập vào tài khoản của mình.",
        "Vui lòng chuẩn bị báo cáo doanh số quý ba trước thứ Sáu và gửi cho cả nhóm.",
        "Sản phẩm này tạm thời hết hàng, thời gian giao hàng khoảng hai tuần.",
    ],
    "mixed": [
        "请帮我修复这个函数：def add(a, b): return a - b  # 应该返回两数之和",
        "エラーメッセージ: TypeError: Cannot read properties of undefined (reading 'map') が出ます。どうすればいいですか？",
        "Объясни, что делает этот код: for i in range(10): print(i ** 2)",
        "이 SQL 쿼리가 느려요: SELECT * FROM orders WHERE created_at > NOW() - INTERVAL '7 days';",
        "मेरा Python script `pip install requests` के बाद भी ImportError दे रहा है।",
        "```python\n# 计算用户的平均订单金额\ndef average(orders):\n    return sum(o.total for o in orders) / len(orders)\n```",
        "今天天气真好 😊🌞 我们去公园散步吧！Let's meet at 3pm near the north gate.",
        "{\"name\": \"查询订单\", \"description\": \"根据订单号查询订单的状态和物流信息\", \"parameters\": {\"type\": \"object\"}}",
    ],
}

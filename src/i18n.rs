//! The words optbridge says to recipients, per locale (da, nb, sv, en).
//!
//! Plain structs of `&'static str`, one per locale: the compiler checks that every locale has
//! every string. Sentences that embed a value are functions.

use crate::domain::Locale;

/// Strings of the invitation email.
pub struct EmailStrings {
    pub hello: &'static str,
    pub button: &'static str,
    pub button_fallback: &'static str,
    pub you_get: &'static str,
    pub how_often: &'static str,
    pub voluntary: &'static str,
    pub unsubscribe: &'static str,
    pub privacy: &'static str,
}

pub fn email(locale: Locale) -> &'static EmailStrings {
    match locale {
        Locale::Da => &EmailStrings {
            hello: "Hej",
            button: "Ja tak, jeg vil have SMS",
            button_fallback: "Virker knappen ikke? Åbn dette link:",
            you_get: "Det får du",
            how_often: "Hvor ofte",
            voluntary: "Det er helt frivilligt, og dit nyhedsbrev på e-mail fortsætter uændret, uanset hvad du vælger.",
            unsubscribe: "Afmeld e-mails",
            privacy: "Privatlivspolitik",
        },
        Locale::Nb => &EmailStrings {
            hello: "Hei",
            button: "Ja takk, jeg vil ha SMS",
            button_fallback: "Fungerer ikke knappen? Åpne denne lenken:",
            you_get: "Dette får du",
            how_often: "Hvor ofte",
            voluntary: "Det er helt frivillig, og nyhetsbrevet ditt på e-post fortsetter som før, uansett hva du velger.",
            unsubscribe: "Meld deg av e-post",
            privacy: "Personvernerklæring",
        },
        Locale::Sv => &EmailStrings {
            hello: "Hej",
            button: "Ja tack, jag vill ha SMS",
            button_fallback: "Fungerar inte knappen? Öppna den här länken:",
            you_get: "Det här får du",
            how_often: "Hur ofta",
            voluntary: "Det är helt frivilligt, och ditt nyhetsbrev via e-post fortsätter som vanligt, vad du än väljer.",
            unsubscribe: "Avsluta e-postutskick",
            privacy: "Integritetspolicy",
        },
        Locale::En => &EmailStrings {
            hello: "Hi",
            button: "Yes, send me SMS",
            button_fallback: "Button not working? Open this link:",
            you_get: "What you get",
            how_often: "How often",
            voluntary: "It's entirely up to you: your email newsletter continues unchanged whatever you choose.",
            unsubscribe: "Unsubscribe from emails",
            privacy: "Privacy policy",
        },
    }
}

/// Why the recipient got the email: they are on the company's email list (seed 002: ask for the
/// SMS permission through the channel already permitted).
pub fn why_received(locale: Locale, company: &str) -> String {
    match locale {
        Locale::Da => format!("Du får denne e-mail, fordi du er tilmeldt nyhedsbrevet fra {company}."),
        Locale::Nb => format!("Du får denne e-posten fordi du abonnerer på nyhetsbrevet fra {company}."),
        Locale::Sv => format!("Du får det här mejlet eftersom du prenumererar på nyhetsbrevet från {company}."),
        Locale::En => format!("You are receiving this email because you subscribed to the newsletter from {company}."),
    }
}

/// Strings of the public pages (landing, unsubscribe, errors).
pub struct PageStrings {
    pub lang: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub unsubscribe_title: &'static str,
    pub unsubscribe_body: &'static str,
    pub unsubscribe_button: &'static str,
    pub unsubscribed_title: &'static str,
    pub unsubscribed_body: &'static str,
    pub landing_phone_label: &'static str,
    pub landing_phone_hint: &'static str,
    pub landing_categories_label: &'static str,
    pub landing_consent_label: &'static str,
    pub landing_submit: &'static str,
    pub landing_how_it_works: &'static str,
    pub landing_withdraw: &'static str,
    pub how_often: &'static str,
    pub privacy: &'static str,
}

pub fn page(locale: Locale) -> &'static PageStrings {
    match locale {
        Locale::Da => &PageStrings {
            lang: "da",
            not_found_title: "Linket virker ikke",
            not_found_body: "Linket er udløbet eller ugyldigt. Hvis du har brug for hjælp, så kontakt butikken, der sendte dig det.",
            unsubscribe_title: "Afmeld e-mails",
            unsubscribe_body: "Vil du ikke længere have e-mails fra os? Tryk på knappen, så afmelder vi dig med det samme.",
            unsubscribe_button: "Afmeld",
            unsubscribed_title: "Du er afmeldt",
            unsubscribed_body: "Vi sender dig ikke flere marketing-e-mails. Det kan tage op til et minut, før alle systemer ved det.",
            landing_phone_label: "Dit mobilnummer",
            landing_phone_hint: "Med landekode, fx +45 12 34 56 78",
            landing_categories_label: "Hvad vil du høre om? (valgfrit)",
            landing_consent_label: "Ja, jeg giver samtykke som beskrevet ovenfor",
            landing_submit: "Send mig en bekræftelseskode",
            landing_how_it_works: "Vi sender dig en SMS med en kode. Dit samtykke gælder først, når du har bekræftet det.",
            landing_withdraw: "Du kan altid trække dit samtykke tilbage ved at svare STOP på en SMS fra os. Det koster ikke noget at framelde sig.",
            how_often: "Hvor ofte",
            privacy: "Privatlivspolitik",
        },
        Locale::Nb => &PageStrings {
            lang: "nb",
            not_found_title: "Lenken fungerer ikke",
            not_found_body: "Lenken er utløpt eller ugyldig. Trenger du hjelp, kontakt butikken som sendte den til deg.",
            unsubscribe_title: "Meld deg av e-post",
            unsubscribe_body: "Vil du ikke lenger få e-post fra oss? Trykk på knappen, så melder vi deg av med en gang.",
            unsubscribe_button: "Meld av",
            unsubscribed_title: "Du er meldt av",
            unsubscribed_body: "Vi sender deg ikke flere markedsførings-e-poster. Det kan ta opptil ett minutt før alle systemer vet det.",
            landing_phone_label: "Mobilnummeret ditt",
            landing_phone_hint: "Med landskode, f.eks. +47 412 34 567",
            landing_categories_label: "Hva vil du høre om? (valgfritt)",
            landing_consent_label: "Ja, jeg gir samtykke som beskrevet over",
            landing_submit: "Send meg en bekreftelseskode",
            landing_how_it_works: "Vi sender deg en SMS med en kode. Samtykket gjelder først når du har bekreftet det.",
            landing_withdraw: "Du kan alltid trekke samtykket tilbake ved å svare STOPP på en SMS fra oss. Det koster ingenting å melde seg av.",
            how_often: "Hvor ofte",
            privacy: "Personvernerklæring",
        },
        Locale::Sv => &PageStrings {
            lang: "sv",
            not_found_title: "Länken fungerar inte",
            not_found_body: "Länken har gått ut eller är ogiltig. Behöver du hjälp, kontakta butiken som skickade den.",
            unsubscribe_title: "Avsluta e-postutskick",
            unsubscribe_body: "Vill du inte längre få mejl från oss? Tryck på knappen så avslutar vi direkt.",
            unsubscribe_button: "Avsluta",
            unsubscribed_title: "Du är avregistrerad",
            unsubscribed_body: "Vi skickar inga fler marknadsföringsmejl till dig. Det kan ta upp till en minut innan alla system vet om det.",
            landing_phone_label: "Ditt mobilnummer",
            landing_phone_hint: "Med landsnummer, t.ex. +46 70 123 45 67",
            landing_categories_label: "Vad vill du höra om? (valfritt)",
            landing_consent_label: "Ja, jag samtycker enligt texten ovan",
            landing_submit: "Skicka en bekräftelsekod till mig",
            landing_how_it_works: "Vi skickar ett SMS med en kod. Ditt samtycke gäller först när du har bekräftat det.",
            landing_withdraw: "Du kan alltid återkalla ditt samtycke genom att svara STOPP på ett SMS från oss. Det kostar ingenting att avsluta.",
            how_often: "Hur ofta",
            privacy: "Integritetspolicy",
        },
        Locale::En => &PageStrings {
            lang: "en",
            not_found_title: "This link does not work",
            not_found_body: "The link has expired or is not valid. If you need help, contact the shop that sent it to you.",
            unsubscribe_title: "Unsubscribe from emails",
            unsubscribe_body: "Don't want our emails any more? Press the button and we unsubscribe you right away.",
            unsubscribe_button: "Unsubscribe",
            unsubscribed_title: "You are unsubscribed",
            unsubscribed_body: "We will not send you marketing emails any more. It can take up to a minute until every system knows.",
            landing_phone_label: "Your mobile number",
            landing_phone_hint: "With country code, e.g. +45 12 34 56 78",
            landing_categories_label: "What would you like to hear about? (optional)",
            landing_consent_label: "Yes, I consent as described above",
            landing_submit: "Send me a confirmation code",
            landing_how_it_works: "We will text you a code. Your consent only takes effect once you have confirmed it.",
            landing_withdraw: "You can withdraw your consent at any time by replying STOP to any of our text messages, at no cost.",
            how_often: "How often",
            privacy: "Privacy policy",
        },
    }
}

/// The landing page's headline.
pub fn landing_headline(locale: Locale, company: &str) -> String {
    match locale {
        Locale::Da | Locale::Nb | Locale::Sv => format!("Få {company} på SMS"),
        Locale::En => format!("Get {company} by SMS"),
    }
}

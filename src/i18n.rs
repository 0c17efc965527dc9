//! The words optbridge says to recipients, per locale (da, nb, sv, en).
//!
//! Plain structs of `&'static str`, one per locale: the compiler checks that every locale has
//! every string. Sentences that embed a value are functions.

pub mod team;

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
    /// The 503 page: the database is unavailable for a moment.
    pub unavailable_title: &'static str,
    pub unavailable_body: &'static str,
    /// The 500 page.
    pub internal_title: &'static str,
    pub internal_body: &'static str,
    /// A dashboard action the user's role does not allow (403).
    pub forbidden_title: &'static str,
    pub forbidden_body: &'static str,
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
            unavailable_title: "Prøv igen om lidt",
            unavailable_body: "Vi kan ikke vise siden lige nu. Prøv igen om et halvt minut.",
            internal_title: "Noget gik galt",
            internal_body: "Der opstod en fejl hos os. Prøv igen senere.",
            forbidden_title: "Det har du ikke adgang til",
            forbidden_body: "Din rolle i dette workspace giver ikke lov til denne handling. Spørg en ejer.",
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
            unavailable_title: "Prøv igjen om litt",
            unavailable_body: "Vi kan ikke vise siden akkurat nå. Prøv igjen om et halvt minutt.",
            internal_title: "Noe gikk galt",
            internal_body: "Det oppstod en feil hos oss. Prøv igjen senere.",
            forbidden_title: "Det har du ikke tilgang til",
            forbidden_body: "Rollen din i dette arbeidsområdet tillater ikke denne handlingen. Spør en eier.",
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
            unavailable_title: "Försök igen om en stund",
            unavailable_body: "Vi kan inte visa sidan just nu. Försök igen om en halv minut.",
            internal_title: "Något gick fel",
            internal_body: "Ett fel uppstod hos oss. Försök igen senare.",
            forbidden_title: "Det har du inte behörighet till",
            forbidden_body: "Din roll i den här arbetsytan tillåter inte den här åtgärden. Fråga en ägare.",
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
            unavailable_title: "Please try again in a moment",
            unavailable_body: "We can't show this page right now. Please try again in half a minute.",
            internal_title: "Something went wrong",
            internal_body: "Something went wrong on our side. Please try again later.",
            forbidden_title: "Not allowed",
            forbidden_body: "Your role in this workspace does not allow this action. Ask an owner.",
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

/// The SMS optbridge sends, per locale. The double-opt-in request names the company, how to
/// confirm (reply keyword or the code) and how to stop. Every one fits one GSM-7 segment for a
/// company name of up to 20 characters and a privacy URL of up to 60 (Danish, Norwegian and
/// Swedish letters are GSM-7; `tests/api/sms_length.rs` checks every kind in every locale).
pub mod sms {
    use crate::domain::Locale;

    pub fn doi_request(locale: Locale, company: &str, code: &str) -> String {
        match locale {
            Locale::Da => format!(
                "{company}: Svar JA for at bekræfte din SMS-tilmelding, eller brug koden {code}. Svar STOP for at afmelde."
            ),
            Locale::Nb => format!(
                "{company}: Svar JA for å bekrefte SMS-påmeldingen, eller bruk koden {code}. Svar STOPP for å melde deg av."
            ),
            Locale::Sv => format!(
                "{company}: Svara JA för att bekräfta din SMS-anmälan, eller använd koden {code}. Svara STOPP för att avsluta."
            ),
            Locale::En => format!(
                "{company}: Reply YES to confirm your SMS sign-up, or use the code {code}. Reply STOP to opt out."
            ),
        }
    }

    /// After confirmation: what it costs, how to stop, privacy; and how often, when that still
    /// fits one segment (issue 18: one segment for company names up to 20 characters and privacy
    /// URLs up to 60; the frequency is in the consent text they agreed to anyway).
    pub fn receipt(locale: Locale, company: &str, frequency: Option<&str>, privacy_url: &str) -> String {
        let text = |often: &str| match locale {
            Locale::Da => format!(
                "{company}: Tak for din tilmelding{often}. Normal SMS-takst. Afmeld: svar STOP. Privatliv: {privacy_url}"
            ),
            Locale::Nb => format!(
                "{company}: Takk for påmeldingen{often}. Vanlig SMS-takst. Meld av: svar STOPP. Personvern: {privacy_url}"
            ),
            Locale::Sv => format!(
                "{company}: Tack för din anmälan{often}. Vanlig SMS-taxa. Avsluta: svara STOPP. Integritet: {privacy_url}"
            ),
            Locale::En => format!(
                "{company}: You're signed up{often}. Msg&data rates may apply. Reply STOP to opt out. Privacy: {privacy_url}"
            ),
        };
        if let Some(f) = frequency.filter(|f| !f.trim().is_empty()) {
            let with = text(&format!(" ({})", f.trim()));
            if crate::sms::segments::count(&with).segments == 1 {
                return with;
            }
        }
        text("")
    }

    pub fn stopped(locale: Locale, company: &str) -> String {
        match locale {
            Locale::Da => format!(
                "{company}: Du er afmeldt og får ikke flere SMS'er fra os. Svar START for at tilmelde dig igen."
            ),
            Locale::Nb => format!(
                "{company}: Du er meldt av og får ikke flere SMS-er fra oss. Svar START for å melde deg på igjen."
            ),
            Locale::Sv => format!(
                "{company}: Du är avregistrerad och får inga fler SMS från oss. Svara START för att anmäla dig igen."
            ),
            Locale::En => format!(
                "{company}: You are unsubscribed and will get no more texts from us. Reply START to subscribe again."
            ),
        }
    }

    pub fn restarted(locale: Locale, company: &str) -> String {
        match locale {
            Locale::Da => format!("{company}: Velkommen tilbage, du får igen vores SMS'er. Svar STOP for at afmelde."),
            Locale::Nb => {
                format!("{company}: Velkommen tilbake, du får igjen SMS-ene våre. Svar STOPP for å melde deg av.")
            }
            Locale::Sv => format!("{company}: Välkommen tillbaka, du får våra SMS igen. Svara STOPP för att avsluta."),
            Locale::En => format!("{company}: Welcome back, you will get our texts again. Reply STOP to opt out."),
        }
    }

    pub fn help(locale: Locale, company: &str, privacy_url: &str) -> String {
        match locale {
            Locale::Da => format!("{company}: SMS-nyheder. Afmeld: svar STOP. Hjælp og privatliv: {privacy_url}"),
            Locale::Nb => format!("{company}: SMS-nyheter. Meld av: svar STOPP. Hjelp og personvern: {privacy_url}"),
            Locale::Sv => format!("{company}: SMS-nyheter. Avsluta: svara STOPP. Hjälp och integritet: {privacy_url}"),
            Locale::En => format!("{company}: Texts from us. Reply STOP to opt out. Help and privacy: {privacy_url}"),
        }
    }

    /// An answer that is no keyword, from a number with a pending request (sent at most once).
    pub fn hint(locale: Locale, company: &str) -> String {
        match locale {
            Locale::Da => format!("{company}: Svar JA for at bekræfte din tilmelding, eller STOP for at afmelde."),
            Locale::Nb => format!("{company}: Svar JA for å bekrefte påmeldingen, eller STOPP for å melde deg av."),
            Locale::Sv => format!("{company}: Svara JA för att bekräfta din anmälan, eller STOPP för att avsluta."),
            Locale::En => format!("{company}: Reply YES to confirm your sign-up, or STOP to opt out."),
        }
    }

    /// A confirmation reply from a number with several pending requests: which one is meant?
    pub fn ambiguous(locale: Locale) -> String {
        match locale {
            Locale::Da => "Du har flere ventende tilmeldinger. Bekræft med koden fra SMS'en på siden, hvor du tilmeldte dig.".to_owned(),
            Locale::Nb => "Du har flere ventende påmeldinger. Bekreft med koden fra SMS-en på siden der du meldte deg på.".to_owned(),
            Locale::Sv => "Du har flera väntande anmälningar. Bekräfta med koden från SMS:et på sidan där du anmälde dig.".to_owned(),
            Locale::En => "You have several pending sign-ups. Please confirm with the code from the text on the page where you signed up.".to_owned(),
        }
    }
}

/// The sign-up flow after the landing form: errors, the code page, outcomes. `{phone}`,
/// `{country}`, `{n}`, `{sender}` are replaced where they appear.
pub struct FlowStrings {
    pub err_phone_empty: &'static str,
    pub err_phone_invalid: &'static str,
    pub err_phone_not_mobile: &'static str,
    pub err_phone_country: &'static str,
    pub err_phone_too_long: &'static str,
    pub err_consent: &'static str,
    pub err_category: &'static str,
    pub limited_title: &'static str,
    pub limited_body: &'static str,
    pub form_expired_title: &'static str,
    pub form_expired_body: &'static str,
    /// On every code page, whatever the number: why a code may not come ({sender}: the number
    /// SMS come from). The page must not say which numbers are signed up.
    pub no_new_code: &'static str,
    pub code_title: &'static str,
    pub code_body: &'static str,
    pub code_label: &'static str,
    pub code_button: &'static str,
    pub resend_button: &'static str,
    pub resend_sent: &'static str,
    pub resend_wait: &'static str,
    pub resend_no_more: &'static str,
    pub wrong_code: &'static str,
    pub locked_title: &'static str,
    pub locked_body: &'static str,
    pub expired_title: &'static str,
    pub expired_body: &'static str,
    pub sms_failed: &'static str,
    pub confirmed_title: &'static str,
    pub confirmed_body: &'static str,
    pub back_to_form: &'static str,
}

pub fn flow(locale: Locale) -> &'static FlowStrings {
    match locale {
        Locale::Da => &FlowStrings {
            err_phone_empty: "Skriv dit mobilnummer.",
            err_phone_invalid: "Det ligner ikke et gyldigt telefonnummer. Tjek cifrene og landekoden.",
            err_phone_not_mobile: "Det er ikke et mobilnummer. Skriv et nummer, der kan modtage SMS.",
            err_phone_country: "Vi kan kun sende SMS til numre fra de lande, butikken sender til (ikke {country}).",
            err_phone_too_long: "Nummeret er for langt.",
            err_consent: "Sæt flueben, hvis du vil give samtykke. Uden det sender vi ingen SMS.",
            err_category: "Vælg emner fra listen.",
            limited_title: "Prøv igen senere",
            limited_body: "Der er sendt mange SMS'er herfra eller til dette nummer det seneste døgn. Prøv igen i morgen.",
            form_expired_title: "Formularen er udløbet",
            form_expired_body: "Gå tilbage og udfyld formularen igen.",
            no_new_code: "Er du allerede tilmeldt, sender vi ingen ny kode, og du behøver ikke gøre mere. Har du tidligere svaret STOP, så send START til {sender} og bed om koden igen.",
            code_title: "Bekræft dit nummer",
            code_body: "Vi har sendt en SMS til {phone}. Svar JA på den, eller skriv koden fra SMS'en her.",
            code_label: "Kode fra SMS'en",
            code_button: "Bekræft",
            resend_button: "Send koden igen",
            resend_sent: "Vi har sendt en ny kode. Den gamle virker ikke længere.",
            resend_wait: "Vent {n} sekunder, før du beder om en ny kode.",
            resend_no_more: "Vi kan ikke sende flere koder til denne tilmelding.",
            wrong_code: "Koden passer ikke. Du har {n} forsøg tilbage.",
            locked_title: "For mange forkerte koder",
            locked_body: "Tilmeldingen er låst af sikkerhedshensyn. Du kan stadig svare JA på SMS'en, eller starte forfra.",
            expired_title: "Tilmeldingen er udløbet",
            expired_body: "Du bekræftede ikke i tide. Udfyld formularen igen, så sender vi en ny kode.",
            sms_failed: "Vi kunne ikke sende en SMS til nummeret. Tjek det og prøv igen.",
            confirmed_title: "Tak, du er tilmeldt",
            confirmed_body: "Dit samtykke er registreret. Du kan altid afmelde dig ved at svare STOP på en SMS fra os.",
            back_to_form: "Til formularen",
        },
        Locale::Nb => &FlowStrings {
            err_phone_empty: "Skriv mobilnummeret ditt.",
            err_phone_invalid: "Dette ser ikke ut som et gyldig telefonnummer. Sjekk sifrene og landskoden.",
            err_phone_not_mobile: "Dette er ikke et mobilnummer. Skriv et nummer som kan motta SMS.",
            err_phone_country: "Vi kan bare sende SMS til numre fra landene butikken sender til (ikke {country}).",
            err_phone_too_long: "Nummeret er for langt.",
            err_consent: "Kryss av hvis du vil gi samtykke. Uten det sender vi ingen SMS.",
            err_category: "Velg emner fra listen.",
            limited_title: "Prøv igjen senere",
            limited_body: "Det er sendt mange SMS-er herfra eller til dette nummeret det siste døgnet. Prøv igjen i morgen.",
            form_expired_title: "Skjemaet er utløpt",
            form_expired_body: "Gå tilbake og fyll ut skjemaet på nytt.",
            no_new_code: "Er du allerede påmeldt, sender vi ingen ny kode, og du trenger ikke gjøre mer. Har du tidligere svart STOPP, send START til {sender} og be om koden igjen.",
            code_title: "Bekreft nummeret ditt",
            code_body: "Vi har sendt en SMS til {phone}. Svar JA på den, eller skriv koden fra SMS-en her.",
            code_label: "Kode fra SMS-en",
            code_button: "Bekreft",
            resend_button: "Send koden på nytt",
            resend_sent: "Vi har sendt en ny kode. Den gamle virker ikke lenger.",
            resend_wait: "Vent {n} sekunder før du ber om en ny kode.",
            resend_no_more: "Vi kan ikke sende flere koder til denne påmeldingen.",
            wrong_code: "Koden stemmer ikke. Du har {n} forsøk igjen.",
            locked_title: "For mange feil koder",
            locked_body: "Påmeldingen er låst av sikkerhetshensyn. Du kan fortsatt svare JA på SMS-en, eller begynne på nytt.",
            expired_title: "Påmeldingen er utløpt",
            expired_body: "Du bekreftet ikke i tide. Fyll ut skjemaet på nytt, så sender vi en ny kode.",
            sms_failed: "Vi kunne ikke sende en SMS til nummeret. Sjekk det og prøv igjen.",
            confirmed_title: "Takk, du er påmeldt",
            confirmed_body: "Samtykket ditt er registrert. Du kan alltid melde deg av ved å svare STOPP på en SMS fra oss.",
            back_to_form: "Til skjemaet",
        },
        Locale::Sv => &FlowStrings {
            err_phone_empty: "Skriv ditt mobilnummer.",
            err_phone_invalid: "Det ser inte ut som ett giltigt telefonnummer. Kontrollera siffrorna och landsnumret.",
            err_phone_not_mobile: "Det är inte ett mobilnummer. Skriv ett nummer som kan ta emot SMS.",
            err_phone_country: "Vi kan bara skicka SMS till nummer från de länder butiken skickar till (inte {country}).",
            err_phone_too_long: "Numret är för långt.",
            err_consent: "Kryssa i rutan om du vill ge ditt samtycke. Utan det skickar vi inga SMS.",
            err_category: "Välj ämnen från listan.",
            limited_title: "Försök igen senare",
            limited_body: "Många SMS har skickats härifrån eller till det här numret det senaste dygnet. Försök igen i morgon.",
            form_expired_title: "Formuläret har gått ut",
            form_expired_body: "Gå tillbaka och fyll i formuläret igen.",
            no_new_code: "Är du redan anmäld skickar vi ingen ny kod, och du behöver inte göra något mer. Har du tidigare svarat STOPP, skicka START till {sender} och be om koden igen.",
            code_title: "Bekräfta ditt nummer",
            code_body: "Vi har skickat ett SMS till {phone}. Svara JA på det, eller skriv koden från SMS:et här.",
            code_label: "Kod från SMS:et",
            code_button: "Bekräfta",
            resend_button: "Skicka koden igen",
            resend_sent: "Vi har skickat en ny kod. Den gamla gäller inte längre.",
            resend_wait: "Vänta {n} sekunder innan du ber om en ny kod.",
            resend_no_more: "Vi kan inte skicka fler koder för den här anmälan.",
            wrong_code: "Koden stämmer inte. Du har {n} försök kvar.",
            locked_title: "För många felaktiga koder",
            locked_body: "Anmälan är låst av säkerhetsskäl. Du kan fortfarande svara JA på SMS:et, eller börja om.",
            expired_title: "Anmälan har gått ut",
            expired_body: "Du bekräftade inte i tid. Fyll i formuläret igen så skickar vi en ny kod.",
            sms_failed: "Vi kunde inte skicka ett SMS till numret. Kontrollera det och försök igen.",
            confirmed_title: "Tack, du är anmäld",
            confirmed_body: "Ditt samtycke är registrerat. Du kan alltid avsluta genom att svara STOPP på ett SMS från oss.",
            back_to_form: "Till formuläret",
        },
        Locale::En => &FlowStrings {
            err_phone_empty: "Enter your mobile number.",
            err_phone_invalid: "That does not look like a valid phone number. Check the digits and the country code.",
            err_phone_not_mobile: "That is not a mobile number. Enter a number that can receive text messages.",
            err_phone_country: "We can only text numbers from the countries this shop serves (not {country}).",
            err_phone_too_long: "The number is too long.",
            err_consent: "Tick the box if you want to give your consent. Without it we send no texts.",
            err_category: "Choose topics from the list.",
            limited_title: "Please try again later",
            limited_body: "Many texts were sent from here or to this number in the last day. Please try again tomorrow.",
            form_expired_title: "The form has expired",
            form_expired_body: "Go back and fill in the form again.",
            no_new_code: "If you are already signed up, no new code is sent and there is nothing more to do. If you replied STOP before, send START to {sender}, then ask for the code again.",
            code_title: "Confirm your number",
            code_body: "We sent a text to {phone}. Reply YES to it, or type the code from the text here.",
            code_label: "Code from the text",
            code_button: "Confirm",
            resend_button: "Send the code again",
            resend_sent: "We sent a new code. The old one no longer works.",
            resend_wait: "Please wait {n} seconds before asking for a new code.",
            resend_no_more: "We cannot send more codes for this sign-up.",
            wrong_code: "That code is not right. You have {n} attempts left.",
            locked_title: "Too many wrong codes",
            locked_body: "This sign-up is locked for your security. You can still reply YES to the text, or start again.",
            expired_title: "This sign-up has expired",
            expired_body: "It was not confirmed in time. Fill in the form again and we will send a new code.",
            sms_failed: "We could not send a text to that number. Please check it and try again.",
            confirmed_title: "Thank you, you are signed up",
            confirmed_body: "Your consent is recorded. You can always opt out by replying STOP to any of our texts.",
            back_to_form: "Back to the form",
        },
    }
}

/// The marketer's dashboard, in English and Danish (Norwegian and Swedish browsers get English).
pub struct AppStrings {
    pub lang: &'static str,
    pub login_title: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub login_button: &'static str,
    pub login_failed: &'static str,
    pub login_throttled: &'static str,
    pub login_expired_form: &'static str,
    pub logout: &'static str,
    pub nav_campaigns: &'static str,
    pub nav_consent_texts: &'static str,
    pub nav_contacts: &'static str,
    pub nav_suppressions: &'static str,
    pub nav_import: &'static str,
    pub campaigns_title: &'static str,
    pub no_campaigns: &'static str,
    pub col_name: &'static str,
    pub col_status: &'static str,
    pub col_created: &'static str,
    pub col_recipients: &'static str,
    pub col_sent: &'static str,
    pub col_delivered: &'static str,
    pub col_bounced: &'static str,
    pub col_opened: &'static str,
    pub col_opened_human: &'static str,
    pub col_clicked: &'static str,
    pub col_submitted: &'static str,
    pub col_confirmed: &'static str,
    pub col_opted_out: &'static str,
    pub col_unsubscribed: &'static str,
    pub col_conversion: &'static str,
    pub col_variant: &'static str,
    pub col_locale: &'static str,
    pub rates_title: &'static str,
    pub rate_open: &'static str,
    pub rate_click: &'static str,
    pub rate_signup: &'static str,
    pub rate_conversion: &'static str,
    pub this_campaign: &'static str,
    pub benchmark: &'static str,
    pub benchmark_note: &'static str,
    pub funnel_title: &'static str,
    pub timeline_title: &'static str,
    pub timeline_empty: &'static str,
    pub variants_title: &'static str,
    pub locales_title: &'static str,
    pub ab_significant: &'static str,
    pub ab_not_yet: &'static str,
    pub ab_too_little: &'static str,
    pub download_recipients: &'static str,
    pub download_evidence: &'static str,
    pub download_consents: &'static str,
    pub consent_texts_title: &'static str,
    pub col_version: &'static str,
    pub col_sms_preview: &'static str,
    pub segments: &'static str,
    pub contacts_title: &'static str,
    pub search: &'static str,
    pub search_hint: &'static str,
    pub no_contacts: &'static str,
    pub contact_title: &'static str,
    pub email_permission: &'static str,
    pub suppressed: &'static str,
    pub not_suppressed: &'static str,
    pub sms_consents: &'static str,
    pub signups: &'static str,
    pub ledger: &'static str,
    pub erase_title: &'static str,
    pub erase_body: &'static str,
    pub erase_confirm: &'static str,
    pub erase_button: &'static str,
    pub erased: &'static str,
    pub suppressions_title: &'static str,
    pub col_channel: &'static str,
    pub col_address: &'static str,
    pub col_reason: &'static str,
    pub none: &'static str,
}

pub fn app(locale: Locale) -> &'static AppStrings {
    match locale {
        Locale::Da => &AppStrings {
            lang: "da",
            login_title: "Log ind",
            email: "E-mail",
            password: "Adgangskode",
            login_button: "Log ind",
            login_failed: "Forkert e-mail eller adgangskode.",
            login_throttled: "For mange forkerte forsøg herfra. Prøv igen om 15 minutter.",
            login_expired_form: "Formularen var udløbet. Prøv igen.",
            logout: "Log ud",
            nav_campaigns: "Kampagner",
            nav_consent_texts: "Samtykketekster",
            nav_contacts: "Kontakter",
            nav_suppressions: "Spærreliste",
            nav_import: "Importér",
            campaigns_title: "Kampagner",
            no_campaigns: "Ingen kampagner endnu.",
            col_name: "Navn",
            col_status: "Status",
            col_created: "Oprettet",
            col_recipients: "Modtagere",
            col_sent: "Sendt",
            col_delivered: "Leveret",
            col_bounced: "Afvist",
            col_opened: "Åbnet",
            col_opened_human: "Åbnet (personer)",
            col_clicked: "Klikket",
            col_submitted: "Tilmeldt",
            col_confirmed: "Bekræftet",
            col_opted_out: "Afmeldt SMS",
            col_unsubscribed: "Afmeldt e-mail",
            col_conversion: "Konvertering",
            col_variant: "Variant",
            col_locale: "Sprog",
            rates_title: "Nøgletal",
            rate_open: "Åbningsrate",
            rate_click: "Klikrate",
            rate_signup: "Tilmeldte af dem, der åbnede",
            rate_conversion: "Konvertering (bekræftede af sendte)",
            this_campaign: "Denne kampagne",
            benchmark: "KAiKU-benchmark",
            benchmark_note: "KAiKU: invitation på e-mail til en e-mail-liste, 52,2 % åbnede, 6,7 % af dem tilmeldte sig, 3,5 % af alle blev SMS-tilmeldt.",
            funnel_title: "Tragt",
            timeline_title: "Over tid",
            timeline_empty: "Intet sendt endnu.",
            variants_title: "Varianter",
            locales_title: "Sprog",
            ab_significant: "{better} konverterer {pp} procentpoint bedre end {worse}, {conf} % sikkerhed.",
            ab_not_yet: "Endnu ikke signifikant: {better} konverterer {pp} procentpoint bedre end {worse}, {conf} % sikkerhed.",
            ab_too_little: "For få data endnu: hver variant skal have mindst 30 sendte e-mails.",
            download_recipients: "Hent modtagere (CSV)",
            download_evidence: "Hent al dokumentation (JSON, til indsigtsanmodninger)",
            download_consents: "Hent aktive SMS-samtykker (CSV)",
            consent_texts_title: "Samtykketekster",
            col_version: "Version",
            col_sms_preview: "SMS med bekræftelseskode",
            segments: "segmenter",
            contacts_title: "Kontakter",
            search: "Søg",
            search_hint: "E-mail, navn eller eget id",
            no_contacts: "Ingen kontakter fundet.",
            contact_title: "Kontakt",
            email_permission: "E-mail-tilladelse",
            suppressed: "spærret",
            not_suppressed: "ikke spærret",
            sms_consents: "SMS-samtykker",
            signups: "Tilmeldinger med dokumentation",
            ledger: "Samtykkelog",
            erase_title: "Slet personoplysninger",
            erase_body: "Sletter navn, e-mail, telefonnumre, IP-adresser og beskeder for denne kontakt. Samtykkeloggen beholder anonyme poster, så kæden stadig kan efterprøves. Kan ikke fortrydes.",
            erase_confirm: "Ja, slet denne kontakts personoplysninger",
            erase_button: "Slet",
            erased: "Kontaktens personoplysninger er slettet.",
            suppressions_title: "Spærreliste",
            col_channel: "Kanal",
            col_address: "Adresse",
            col_reason: "Årsag",
            none: "Ingen.",
        },
        _ => &AppStrings {
            lang: "en",
            login_title: "Log in",
            email: "Email",
            password: "Password",
            login_button: "Log in",
            login_failed: "Wrong email or password.",
            login_throttled: "Too many wrong attempts from here. Try again in 15 minutes.",
            login_expired_form: "The form had expired. Please try again.",
            logout: "Log out",
            nav_campaigns: "Campaigns",
            nav_consent_texts: "Consent texts",
            nav_contacts: "Contacts",
            nav_suppressions: "Suppression list",
            nav_import: "Import",
            campaigns_title: "Campaigns",
            no_campaigns: "No campaigns yet.",
            col_name: "Name",
            col_status: "Status",
            col_created: "Created",
            col_recipients: "Recipients",
            col_sent: "Sent",
            col_delivered: "Delivered",
            col_bounced: "Bounced",
            col_opened: "Opened",
            col_opened_human: "Opened (people)",
            col_clicked: "Clicked",
            col_submitted: "Signed up",
            col_confirmed: "Confirmed",
            col_opted_out: "Opted out of SMS",
            col_unsubscribed: "Unsubscribed email",
            col_conversion: "Conversion",
            col_variant: "Variant",
            col_locale: "Language",
            rates_title: "Key figures",
            rate_open: "Open rate",
            rate_click: "Click rate",
            rate_signup: "Sign-ups among openers",
            rate_conversion: "Conversion (confirmed of sent)",
            this_campaign: "This campaign",
            benchmark: "KAiKU benchmark",
            benchmark_note: "KAiKU: an email invitation to an email list, 52.2 % opened, 6.7 % of openers signed up, 3.5 % of all recipients got an SMS permission.",
            funnel_title: "Funnel",
            timeline_title: "Over time",
            timeline_empty: "Nothing sent yet.",
            variants_title: "Variants",
            locales_title: "Languages",
            ab_significant: "{better} converts {pp} pp better than {worse}, {conf} % confidence.",
            ab_not_yet: "Not yet significant: {better} converts {pp} pp better than {worse}, {conf} % confidence.",
            ab_too_little: "Not enough data yet: each variant needs at least 30 emails sent.",
            download_recipients: "Download recipients (CSV)",
            download_evidence: "Download all evidence (JSON, for access requests)",
            download_consents: "Download active SMS consents (CSV)",
            consent_texts_title: "Consent texts",
            col_version: "Version",
            col_sms_preview: "SMS with the confirmation code",
            segments: "segments",
            contacts_title: "Contacts",
            search: "Search",
            search_hint: "Email, name or your own id",
            no_contacts: "No contacts found.",
            contact_title: "Contact",
            email_permission: "Email permission",
            suppressed: "suppressed",
            not_suppressed: "not suppressed",
            sms_consents: "SMS consents",
            signups: "Sign-ups with their evidence",
            ledger: "Consent ledger",
            erase_title: "Erase personal data",
            erase_body: "Erases name, email, phone numbers, IP addresses and messages of this contact. The consent ledger keeps anonymous entries so its chain still verifies. This cannot be undone.",
            erase_confirm: "Yes, erase this contact's personal data",
            erase_button: "Erase",
            erased: "The contact's personal data was erased.",
            suppressions_title: "Suppression list",
            col_channel: "Channel",
            col_address: "Address",
            col_reason: "Reason",
            none: "None.",
        },
    }
}

/// The dashboard's webhook page (`/app/webhooks`), in the dashboard's two languages.
pub struct WebhookStrings {
    pub title: &'static str,
    pub intro: &'static str,
    pub endpoints: &'static str,
    pub no_endpoints: &'static str,
    pub deliveries: &'static str,
    pub no_deliveries: &'static str,
    pub col_url: &'static str,
    pub col_events: &'static str,
    pub col_created: &'static str,
    pub col_event: &'static str,
    pub col_status: &'static str,
    pub col_attempts: &'static str,
    pub col_last_error: &'static str,
    pub col_last_attempt: &'static str,
    pub pending: &'static str,
    pub delivered: &'static str,
    pub failed: &'static str,
    pub send_again: &'static str,
    pub queued: &'static str,
}

pub fn webhooks(locale: Locale) -> &'static WebhookStrings {
    match locale {
        Locale::Da => &WEBHOOKS_DA,
        _ => &WEBHOOKS_EN,
    }
}

static WEBHOOKS_DA: WebhookStrings = WebhookStrings {
    title: "Webhooks",
    intro: "Jeres systemer får besked om samtykker, afmeldinger, bounces og sendte kampagner. Endpoints oprettes via API'et (POST /api/v1/webhooks), som viser hemmeligheden én gang.",
    endpoints: "Endpoints",
    no_endpoints: "Ingen endpoints endnu.",
    deliveries: "Seneste leveringer",
    no_deliveries: "Ingen leveringer endnu.",
    col_url: "URL",
    col_events: "Hændelser",
    col_created: "Oprettet",
    col_event: "Hændelse",
    col_status: "Status",
    col_attempts: "Forsøg",
    col_last_error: "Seneste fejl",
    col_last_attempt: "Seneste forsøg",
    pending: "venter",
    delivered: "leveret",
    failed: "fejlet",
    send_again: "Send igen",
    queued: "Leveringen er sat i kø igen med samme webhook-id.",
};

static WEBHOOKS_EN: WebhookStrings = WebhookStrings {
    title: "Webhooks",
    intro: "Your systems hear of consents, withdrawals, unsubscribes, bounces and sent campaigns. Endpoints are registered through the API (POST /api/v1/webhooks), which shows the secret once.",
    endpoints: "Endpoints",
    no_endpoints: "No endpoints yet.",
    deliveries: "Latest deliveries",
    no_deliveries: "No deliveries yet.",
    col_url: "URL",
    col_events: "Events",
    col_created: "Created",
    col_event: "Event",
    col_status: "Status",
    col_attempts: "Attempts",
    col_last_error: "Last error",
    col_last_attempt: "Last attempt",
    pending: "pending",
    delivered: "delivered",
    failed: "failed",
    send_again: "Send again",
    queued: "The delivery is queued again with the same webhook-id.",
};
/// The banner on a campaign preview's landing page (issue 16, item 5).
pub fn preview_banner(locale: Locale) -> &'static str {
    match locale {
        Locale::Da => "Forhåndsvisning: sådan ser modtagerne siden. Formularen er slået fra, og intet registreres.",
        Locale::Nb => "Forhåndsvisning: slik ser mottakerne siden. Skjemaet er slått av, og ingenting registreres.",
        Locale::Sv => "Förhandsvisning: så här ser mottagarna sidan. Formuläret är avstängt och inget registreras.",
        Locale::En => "Preview: this is the page recipients see. The form is switched off and nothing is recorded.",
    }
}

/// The dashboard's campaign editor and controls (issue 16, items 4–7), en and da.
pub struct CampaignConsoleStrings {
    pub new_campaign: &'static str,
    pub edit_campaign: &'static str,
    pub name: &'static str,
    pub languages: &'static str,
    pub languages_hint: &'static str,
    pub consent_text: &'static str,
    pub no_consent_text: &'static str,
    pub subject: &'static str,
    pub intro: &'static str,
    pub intro_hint: &'static str,
    pub frequency: &'static str,
    pub frequency_hint: &'static str,
    pub variants: &'static str,
    pub variants_hint: &'static str,
    pub variant: &'static str,
    pub variant_name: &'static str,
    pub weight: &'static str,
    pub variant_subject: &'static str,
    pub variant_intro: &'static str,
    pub add_variant: &'static str,
    pub remove_variant: &'static str,
    pub save_draft: &'static str,
    pub edit_draft: &'static str,
    pub audience: &'static str,
    pub audience_hint: &'static str,
    pub col_language: &'static str,
    pub col_contacts: &'static str,
    pub preview: &'static str,
    pub preview_frame: &'static str,
    pub test_send: &'static str,
    pub test_send_hint: &'static str,
    pub test_email: &'static str,
    pub test_button: &'static str,
    pub test_queued: &'static str,
    pub send_title: &'static str,
    pub send_now: &'static str,
    pub schedule_at: &'static str,
    /// `{zone}` is the time zone the field is read in.
    pub schedule_hint: &'static str,
    pub schedule: &'static str,
    pub pause: &'static str,
    pub resume: &'static str,
    pub cancel: &'static str,
    pub cancel_confirm: &'static str,
    pub scheduled_for: &'static str,
    pub status_draft: &'static str,
    pub status_scheduled: &'static str,
    pub status_sending: &'static str,
    pub status_paused: &'static str,
    pub status_sent: &'static str,
    pub status_cancelled: &'static str,
    pub msg_conflict: &'static str,
    pub msg_limited: &'static str,
    pub msg_invalid: &'static str,
    pub msg_done: &'static str,
    /// The rules a campaign's field can break (`campaigns::field`), after the field's name;
    /// `{max}` and `{word}` are replaced.
    pub err_length: &'static str,
    pub err_single_line: &'static str,
    pub err_control: &'static str,
    pub err_free_word: &'static str,
    pub err_consent_text: &'static str,
    pub err_no_language: &'static str,
    pub err_variant_name: &'static str,
    pub err_variant_twice: &'static str,
    pub err_weight: &'static str,
}

pub fn campaign_console(locale: Locale) -> &'static CampaignConsoleStrings {
    match locale {
        Locale::Da => &CampaignConsoleStrings {
            new_campaign: "Ny kampagne",
            edit_campaign: "Rediger kladde",
            name: "Navn (kun internt)",
            languages: "Sprog",
            languages_hint: "Hver modtager læser ét sprog: vælg de sprog, kampagnen går ud på, og udfyld teksterne for hvert af dem.",
            consent_text: "Samtykketekst (version)",
            no_consent_text: "Der er ingen samtykketekst på dette sprog endnu.",
            subject: "Emnelinje",
            intro: "Indledning",
            intro_hint: "Afsnit adskilles af en tom linje.",
            frequency: "Hvor ofte",
            frequency_hint: "Fx \"højst 4 gange om måneden\". Vises i e-mailen og på siden.",
            variants: "Varianter (A/B-test)",
            variants_hint: "Tomme felter bruger kampagnens tekst på det sprog. Vægten styrer, hvor mange der får varianten.",
            variant: "Variant",
            variant_name: "Navn",
            weight: "Vægt",
            variant_subject: "Emnelinje",
            variant_intro: "Indledning",
            add_variant: "Tilføj variant",
            remove_variant: "Fjern variant",
            save_draft: "Gem kladde",
            edit_draft: "Rediger kladden",
            audience: "Modtagere",
            audience_hint: "Kontakter pr. sprog, der ville få invitationen nu (uden frameldte og uden dem, der allerede har givet SMS-samtykke).",
            col_language: "Sprog",
            col_contacts: "Kontakter",
            preview: "Forhåndsvisning",
            preview_frame: "Forhåndsvisning af e-mailen",
            test_send: "Send en test",
            test_send_hint: "Testen går gennem den rigtige afsendelse med \"[TEST]\" foran emnet. Den tæller ikke med, og dens links registrerer intet. Højst 20 i timen.",
            test_email: "Send til e-mailadresse",
            test_button: "Send test",
            test_queued: "Testen er sendt afsted.",
            send_title: "Afsendelse",
            send_now: "Send nu",
            schedule_at: "Eller planlæg til",
            schedule_hint: "Tidspunkt i {zone}.",
            schedule: "Planlæg",
            pause: "Sæt på pause",
            resume: "Fortsæt",
            cancel: "Annullér kampagnen",
            cancel_confirm: "Ja, annullér: invitationer, der ikke er sendt, bliver aldrig sendt",
            scheduled_for: "Planlagt til",
            status_draft: "kladde",
            status_scheduled: "planlagt",
            status_sending: "sender",
            status_paused: "på pause",
            status_sent: "sendt",
            status_cancelled: "annulleret",
            msg_conflict: "Det kan kampagnen ikke i sin nuværende status.",
            msg_limited: "Der er sendt 20 tests den sidste time. Prøv igen senere.",
            msg_invalid: "Tjek felterne: adressen eller tidspunktet er ikke gyldigt.",
            msg_done: "Udført.",
            err_length: "skriv 1 til {max} tegn.",
            err_single_line: "kun én linje.",
            err_control: "fjern kontroltegnene (usynlige tegn, der kom med, da teksten blev indsat).",
            err_free_word: "brug ikke ordet \"{word}\": intet må kaldes gratis som modydelse for et samtykke.",
            err_consent_text: "vælg en samtykketekst på dette sprog (opret først en under Samtykketekster).",
            err_no_language: "vælg mindst ét sprog.",
            err_variant_name: "navnet skal være 1 til 20 bogstaver, cifre, - eller _.",
            err_variant_twice: "to varianter har dette navn.",
            err_weight: "vægten skal være 1 til 1000.",
        },
        _ => &CampaignConsoleStrings {
            new_campaign: "New campaign",
            edit_campaign: "Edit draft",
            name: "Name (internal only)",
            languages: "Languages",
            languages_hint: "Every recipient reads one language: choose the languages the campaign goes out in and fill in the texts for each.",
            consent_text: "Consent text (version)",
            no_consent_text: "There is no consent text in this language yet.",
            subject: "Subject line",
            intro: "Introduction",
            intro_hint: "Separate paragraphs with an empty line.",
            frequency: "How often",
            frequency_hint: "E.g. \"at most 4 times a month\". Shown in the email and on the page.",
            variants: "Variants (A/B test)",
            variants_hint: "Empty fields use the campaign's text in that language. The weight sets how many recipients get the variant.",
            variant: "Variant",
            variant_name: "Name",
            weight: "Weight",
            variant_subject: "Subject line",
            variant_intro: "Introduction",
            add_variant: "Add variant",
            remove_variant: "Remove variant",
            save_draft: "Save draft",
            edit_draft: "Edit the draft",
            audience: "Audience",
            audience_hint: "Contacts per language who would get the invitation now (without unsubscribed contacts and those who already gave SMS consent).",
            col_language: "Language",
            col_contacts: "Contacts",
            preview: "Preview",
            preview_frame: "Preview of the email",
            test_send: "Send a test",
            test_send_hint: "The test goes through the real sending with \"[TEST]\" before the subject. It counts for nothing and its links record nothing. At most 20 an hour.",
            test_email: "Send to email address",
            test_button: "Send test",
            test_queued: "The test is on its way.",
            send_title: "Sending",
            send_now: "Send now",
            schedule_at: "Or schedule for",
            schedule_hint: "Time in {zone}.",
            schedule: "Schedule",
            pause: "Pause",
            resume: "Resume",
            cancel: "Cancel the campaign",
            cancel_confirm: "Yes, cancel: invitations not yet sent will never be sent",
            scheduled_for: "Scheduled for",
            status_draft: "draft",
            status_scheduled: "scheduled",
            status_sending: "sending",
            status_paused: "paused",
            status_sent: "sent",
            status_cancelled: "cancelled",
            msg_conflict: "The campaign cannot do that in its current status.",
            msg_limited: "20 tests were sent in the last hour. Try again later.",
            msg_invalid: "Check the fields: the address or the time is not valid.",
            msg_done: "Done.",
            err_length: "write 1 to {max} characters.",
            err_single_line: "one line only.",
            err_control: "remove the control characters (invisible characters that came with pasted text).",
            err_free_word: "don't use the word \"{word}\": nothing may be called free in return for consent.",
            err_consent_text: "choose a consent text in this language (create one under Consent texts first).",
            err_no_language: "choose at least one language.",
            err_variant_name: "use 1 to 20 letters, digits, - or _ in the name.",
            err_variant_twice: "two variants have this name.",
            err_weight: "give a weight from 1 to 1000.",
        },
    }
}

/// Issue 17's words: tap-to-text on the landing page, the reminder email, the code page's way
/// back to the form. `{keyword}`, `{code}`, `{number}` are replaced where they appear.
pub struct ConversionStrings {
    /// The locale's confirm word, prefilled in the tap-to-text message (a keyword of `sms::keywords`).
    pub yes_word: &'static str,
    pub tap_title: &'static str,
    pub tap_button: &'static str,
    pub tap_manual: &'static str,
    pub tap_note: &'static str,
    pub wrong_number: &'static str,
    pub reminder_subject: &'static str,
    pub reminder_body: &'static str,
    pub reminder_button: &'static str,
    pub reminder_ignore: &'static str,
}

pub fn conversion(locale: Locale) -> &'static ConversionStrings {
    match locale {
        Locale::Da => &ConversionStrings {
            yes_word: "JA",
            tap_title: "Eller tilmeld dig med én SMS",
            tap_button: "Send SMS'en fra min telefon",
            tap_manual: "Send {keyword} {code} til {number}.",
            tap_note: "Når du sender SMS'en, giver du samtykke efter teksten ovenfor med dit mobilnummer. Normal SMS-takst.",
            wrong_number: "Forkert nummer? Indtast det igen",
            reminder_subject: "Du mangler kun at bekræfte din SMS-tilmelding",
            reminder_body: "Du har tilmeldt dig SMS'er fra {company}, men tilmeldingen er ikke bekræftet endnu. Bekræft den med koden fra SMS'en, få en ny SMS, eller ret dit nummer her:",
            reminder_button: "Bekræft min tilmelding",
            reminder_ignore: "Vil du ikke have SMS'er? Så gør du ingenting: uden bekræftelse bliver du ikke tilmeldt, og du får ingen flere påmindelser.",
        },
        Locale::Nb => &ConversionStrings {
            yes_word: "JA",
            tap_title: "Eller meld deg på med én SMS",
            tap_button: "Send SMS-en fra telefonen min",
            tap_manual: "Send {keyword} {code} til {number}.",
            tap_note: "Når du sender SMS-en, samtykker du etter teksten over med mobilnummeret ditt. Vanlig SMS-takst.",
            wrong_number: "Feil nummer? Skriv det inn på nytt",
            reminder_subject: "Du mangler bare å bekrefte SMS-påmeldingen",
            reminder_body: "Du har meldt deg på SMS-er fra {company}, men påmeldingen er ikke bekreftet ennå. Bekreft med koden fra SMS-en, få en ny SMS, eller rett nummeret ditt her:",
            reminder_button: "Bekreft påmeldingen",
            reminder_ignore: "Vil du ikke ha SMS-er? Da gjør du ingenting: uten bekreftelse blir du ikke påmeldt, og du får ingen flere påminnelser.",
        },
        Locale::Sv => &ConversionStrings {
            yes_word: "JA",
            tap_title: "Eller anmäl dig med ett SMS",
            tap_button: "Skicka SMS:et från min telefon",
            tap_manual: "Skicka {keyword} {code} till {number}.",
            tap_note: "När du skickar SMS:et samtycker du enligt texten ovan med ditt mobilnummer. Vanlig SMS-taxa.",
            wrong_number: "Fel nummer? Skriv in det igen",
            reminder_subject: "Du behöver bara bekräfta din SMS-anmälan",
            reminder_body: "Du har anmält dig till SMS från {company}, men anmälan är inte bekräftad än. Bekräfta med koden från SMS:et, få ett nytt SMS eller rätta ditt nummer här:",
            reminder_button: "Bekräfta min anmälan",
            reminder_ignore: "Vill du inte ha SMS? Då behöver du inte göra något: utan bekräftelse blir du inte anmäld och får inga fler påminnelser.",
        },
        Locale::En => &ConversionStrings {
            yes_word: "YES",
            tap_title: "Or sign up with one text",
            tap_button: "Send the text from my phone",
            tap_manual: "Text {keyword} {code} to {number}.",
            tap_note: "By sending the text you consent, as worded above, with your mobile number. Message and data rates may apply.",
            wrong_number: "Wrong number? Enter it again",
            reminder_subject: "One step left: confirm your SMS sign-up",
            reminder_body: "You signed up for texts from {company}, but the sign-up is not confirmed yet. Confirm it with the code from the text, get a new text, or correct your number here:",
            reminder_button: "Confirm my sign-up",
            reminder_ignore: "Changed your mind? Then do nothing: without a confirmation you are not signed up, and you get no further reminders.",
        },
    }
}

/// A tap-to-text code sent again, or from another number: one polite answer, creating nothing.
pub fn tap_code_used(locale: Locale, company: &str) -> String {
    match locale {
        Locale::Da => format!(
            "{company}: Denne kode er allerede brugt eller udløbet. Åbn linket i e-mailen igen for at tilmelde dig."
        ),
        Locale::Nb => format!(
            "{company}: Denne koden er allerede brukt eller utløpt. Åpne lenken i e-posten på nytt for å melde deg på."
        ),
        Locale::Sv => format!(
            "{company}: Den här koden är redan använd eller har gått ut. Öppna länken i mejlet igen för att anmäla dig."
        ),
        Locale::En => format!(
            "{company}: This code was used already or has expired. Open the link in the email again to sign up."
        ),
    }
}

/// The dashboard's words for issue 17 (da and en, as [`app`]).
pub struct ConversionAppStrings {
    pub paths_title: &'static str,
    pub path_form_reply: &'static str,
    pub path_form_code: &'static str,
    pub path_tap_to_text: &'static str,
    pub path_after_reminder: &'static str,
    pub reminded: &'static str,
    pub paths_note: &'static str,
    pub follow_ups_title: &'static str,
    pub combined: &'static str,
    pub audience: &'static str,
}

pub fn conversion_app(locale: Locale) -> &'static ConversionAppStrings {
    match locale {
        Locale::Da => &ConversionAppStrings {
            paths_title: "Bekræftelser pr. vej",
            path_form_reply: "Formular + svar JA",
            path_form_code: "Formular + kode",
            path_tap_to_text: "Én SMS (tap-to-text)",
            path_after_reminder: "Efter påmindelsen",
            reminded: "Påmindet pr. e-mail",
            paths_note: "Søjlerne er andele af de sendte e-mails; stregen er KAiKU's konvertering (3,5 %).",
            follow_ups_title: "Opfølgninger",
            combined: "I alt med opfølgninger, hver person én gang",
            audience: "Målgruppe",
        },
        Locale::Nb | Locale::Sv | Locale::En => &ConversionAppStrings {
            paths_title: "Confirmations by path",
            path_form_reply: "Form + reply YES",
            path_form_code: "Form + code",
            path_tap_to_text: "One text (tap-to-text)",
            path_after_reminder: "After the reminder",
            reminded: "Reminded by email",
            paths_note: "Bars are shares of the emails sent; the marker is KAiKU's conversion (3.5 %).",
            follow_ups_title: "Follow-up waves",
            combined: "Combined with follow-ups, each person once",
            audience: "Audience",
        },
    }
}

/// The dashboard pages a marketer works on (import, the consent-text editor, the contact list,
/// the dashboard's 404 page), in Danish or English like the rest of the dashboard. `{…}` marks
/// where a value goes.
pub struct MarketerStrings {
    pub import_title: &'static str,
    pub import_intro: &'static str,
    pub import_formats: &'static str,
    pub import_file_label: &'static str,
    /// `{max}`: the largest file accepted.
    pub import_file_hint: &'static str,
    pub import_button: &'static str,
    pub import_recent: &'static str,
    pub import_started: &'static str,
    pub import_file: &'static str,
    pub import_error_form: &'static str,
    pub import_error_no_file: &'static str,
    /// `{max}`: the largest file accepted.
    pub import_error_too_large: &'static str,
    pub import_error_upload: &'static str,
    pub job_title: &'static str,
    pub job_refreshing: &'static str,
    pub job_stop_refreshing: &'static str,
    pub job_refresh_now: &'static str,
    pub status_queued: &'static str,
    pub status_running: &'static str,
    pub status_done: &'static str,
    pub status_failed: &'static str,
    pub job_format: &'static str,
    pub job_records: &'static str,
    pub job_imported: &'static str,
    pub job_updated: &'static str,
    pub job_refused: &'static str,
    pub job_failed: &'static str,
    pub job_first_refused: &'static str,
    pub col_line: &'static str,
    pub col_row: &'static str,
    pub job_download_refused: &'static str,
    pub job_import_another: &'static str,
    pub ct_new: &'static str,
    pub ct_locale: &'static str,
    pub ct_company: &'static str,
    pub ct_body: &'static str,
    pub ct_body_hint: &'static str,
    pub ct_categories: &'static str,
    pub ct_categories_hint: &'static str,
    pub ct_privacy_url: &'static str,
    pub ct_preview_button: &'static str,
    pub ct_save_button: &'static str,
    pub ct_refused: &'static str,
    pub ct_preview_title: &'static str,
    pub ct_preview_hint: &'static str,
    pub ct_sms_title: &'static str,
    /// `{encoding}`, `{units}`, `{segments}`.
    pub ct_sms_meta: &'static str,
    /// `{version}`.
    pub ct_saved: &'static str,
    /// `{version}`.
    pub ct_unchanged: &'static str,
    pub contacts_filter: &'static str,
    pub any: &'static str,
    pub sms_consent: &'static str,
    pub sms_active: &'static str,
    pub sms_none: &'static str,
    pub suppressed: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub filter_button: &'static str,
    pub next_page: &'static str,
    pub first_page: &'static str,
    /// `{from}`–`{to}`.
    pub showing: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub not_found_link: &'static str,
}

/// The consent-text rules (`consent::texts::TextRule`) as the dashboard's form says them next to
/// the field; `{min}`, `{max}`, `{is}`, `{char}`, `{company}`, `{example}`, `{category}` and
/// `{word}` are replaced.
pub struct ConsentRuleStrings {
    pub locale: &'static str,
    pub company_name_length: &'static str,
    pub body_length: &'static str,
    pub invisible: &'static str,
    pub names_company: &'static str,
    pub says_sms: &'static str,
    pub says_withdrawal: &'static str,
    pub control: &'static str,
    pub category_length: &'static str,
    pub category_twice: &'static str,
    pub too_many_categories: &'static str,
    pub privacy_url: &'static str,
    pub free_word: &'static str,
}

pub fn consent_rules(locale: Locale) -> &'static ConsentRuleStrings {
    match locale {
        Locale::Da => &ConsentRuleStrings {
            locale: "Vælg et af sprogene.",
            company_name_length: "Skriv 1 til 200 tegn.",
            body_length: "Skriv {min} til {max} tegn (teksten har {is}).",
            invisible: "Indeholder {char}, et usynligt tegn, der ændrer, hvordan teksten vises: fjern det.",
            names_company: "Nævn virksomheden {company}: samtykket gives til én navngiven virksomhed, aldrig på vegne af andre.",
            says_sms: "Skriv, at samtykket gælder SMS: et samtykke gælder én kanal.",
            says_withdrawal: "Skriv, hvordan samtykket trækkes tilbage (fx {example}): det skal stå i selve samtykketeksten.",
            control: "Fjern kontroltegnene fra virksomhedsnavnet, teksten og kategorierne.",
            category_length: "Skriv hver kategori med 1 til {max} tegn.",
            category_twice: "{category} står to gange på listen.",
            too_many_categories: "Højst {max} kategorier.",
            privacy_url: "Angiv adressen på privatlivspolitikken, med https:// foran.",
            free_word: "Brug ikke ordet \"{word}\": et samtykke har sin egen værdi, så intet må kaldes gratis som modydelse for det (Forbrugerombudsmandens vejledning om spam).",
        },
        _ => &ConsentRuleStrings {
            locale: "Choose one of the languages.",
            company_name_length: "Write 1 to 200 characters.",
            body_length: "Write {min} to {max} characters (the text has {is}).",
            invisible: "Contains {char}, an invisible character that changes how the text is shown: remove it.",
            names_company: "Name the company {company}: consent is given to one named company, never on behalf of others.",
            says_sms: "Say that the consent is for SMS: a consent is for one channel.",
            says_withdrawal: "Say how the consent is withdrawn (e.g. {example}): the consent text itself has to say it.",
            control: "Remove the control characters from the company name, the text and the categories.",
            category_length: "Write each category in 1 to {max} characters.",
            category_twice: "{category} is listed twice.",
            too_many_categories: "At most {max} categories.",
            privacy_url: "Give the address of the privacy policy, starting with https://.",
            free_word: "Don't use the word \"{word}\": a consent has a value of its own, so nothing may be called free in return for it (the Danish Consumer Ombudsman's spam guidance).",
        },
    }
}

/// Why an import refused a row or stopped (`contacts::import::problem::RowProblem` and
/// `FileProblem`), as the Danish dashboard says it; the English dashboard shows the importer's own
/// words. `{column}`, `{max}`, `{value}`, `{line}`, `{email}`, `{header}`, `{cell}`, `{mark}`,
/// `{expected}`, `{found}`, `{span}`, `{first}`, `{last}`, `{char}` and `{detail}` are replaced.
pub struct ImportProblemStrings {
    pub unreadable_csv: &'static str,
    pub duplicate: &'static str,
    pub marked: &'static str,
    pub not_accepting: &'static str,
    pub unsubscribed: &'static str,
    pub cleaned: &'static str,
    pub not_subscribed: &'static str,
    pub blank: &'static str,
    pub field_count: &'static str,
    pub span: &'static str,
    pub not_utf8: &'static str,
    pub line_break: &'static str,
    pub too_long: &'static str,
    pub control: &'static str,
    pub invisible: &'static str,
    pub email_empty: &'static str,
    pub email_malformed: &'static str,
    pub email_too_long: &'static str,
    pub locale: &'static str,
    pub consent_time_format: &'static str,
    pub consent_time_future: &'static str,
    pub file_empty: &'static str,
    pub file_no_email_column: &'static str,
    /// Stands for `{found}` when the header row is blank.
    pub file_no_columns: &'static str,
    pub file_header_not_utf8: &'static str,
    pub file_duplicate_column: &'static str,
    pub file_unreadable: &'static str,
    pub file_gone: &'static str,
}

/// `None` for English: the importer's own words are English.
pub fn import_problems(locale: Locale) -> Option<&'static ImportProblemStrings> {
    match locale {
        Locale::Da => Some(&ImportProblemStrings {
            unreadable_csv: "Linjen kan ikke læses som CSV ({detail}).",
            duplicate: "Samme e-mail som linje {line} ({email}).",
            marked: "Ikke importeret: {mark} ({header}: {cell}). En invitation på e-mail ville gå imod det valg.",
            not_accepting: "eksporten angiver, at personen ikke tager imod markedsføring på e-mail",
            unsubscribed: "eksporten angiver, at personen har frameldt sig markedsføring på e-mail",
            cleaned: "eksporten angiver, at adressen er renset (post til den kom retur, eller den var ugyldig)",
            not_subscribed: "eksporten angiver, at personen ikke er tilmeldt markedsføring på e-mail",
            blank: "(tom)",
            field_count: "Rækken har {found} felter, men overskriften har {expected}.{span}",
            span: " Rækken løber over linje {first}–{last}: se efter et anførselstegn, der ikke er lukket.",
            not_utf8: "Kolonnen {column} er ikke gyldig UTF-8: gem filen som CSV i UTF-8.",
            line_break: "Kolonnen {column} indeholder et linjeskift.{span}",
            too_long: "{column} er længere end {max} tegn.",
            control: "{column} indeholder kontroltegn.",
            invisible: "{column} indeholder {char}, et usynligt tegn, der ændrer, hvordan teksten vises: fjern det.",
            email_empty: "E-mailadressen mangler.",
            email_malformed: "'{value}' er ikke en e-mailadresse (skriv den som navn@domæne.dk).",
            email_too_long: "'{value}…' er længere end 254 tegn.",
            locale: "Sproget '{value}' kendes ikke (brug da, nb, sv eller en).",
            consent_time_format: "email_consent_at '{value}' er ikke en dato (brug 2024-05-01, 2024-05-01 10:00:00 eller RFC 3339).",
            consent_time_future: "email_consent_at '{value}' ligger i fremtiden.",
            file_empty: "Filen er tom: den første række skal være en overskrift med en email-kolonne.",
            file_no_email_column: "Overskriften har ingen email-kolonne (fandt: {found}). Den første række skal navngive kolonnerne, fx email,first_name,last_name,locale.",
            file_no_columns: "ingen",
            file_header_not_utf8: "Overskriften er ikke gyldig UTF-8: gem filen som CSV i UTF-8.",
            file_duplicate_column: "Overskriften nævner kolonnen '{column}' to gange.",
            file_unreadable: "Filen kunne ikke læses ({detail}).",
            file_gone: "Den uploadede fil findes ikke længere ({detail}). Upload den igen (alle instanser, der kører workers, skal dele IMPORT_DIR).",
        }),
        _ => None,
    }
}

pub fn marketer(locale: Locale) -> &'static MarketerStrings {
    match locale {
        Locale::Da => &MarketerStrings {
            import_title: "Importér kontakter",
            import_intro: "Upload en CSV-fil med de personer, der har givet jer tilladelse til markedsføring på e-mail. Kontakter, der allerede findes (samme e-mail), bliver opdateret; spærrede kontakter forbliver spærrede.",
            import_formats: "Vi genkender optbridges egne kolonner (email, first_name, last_name, locale, external_id, email_consent_at, email_consent_source) og eksport-filer fra Shopify (kunder), Mailchimp (målgruppe) og Klaviyo (profiler). Personer, som eksporten angiver som frameldt, renset eller uden tilladelse til e-mail-markedsføring, bliver ikke importeret.",
            import_file_label: "CSV-fil",
            import_file_hint: "Højst {max}. Kommaer, semikoloner eller tabulatorer; UTF-8.",
            import_button: "Importér",
            import_recent: "Seneste importer",
            import_started: "Startet",
            import_file: "Fil",
            import_error_form: "Formularen var udløbet. Indlæs siden igen, og prøv en gang til.",
            import_error_no_file: "Vælg en CSV-fil at importere.",
            import_error_too_large: "Filen er for stor: højst {max}. Del den op i flere filer.",
            import_error_upload: "Filen blev ikke modtaget helt. Prøv igen.",
            job_title: "Import",
            job_refreshing: "Importen kører. Siden opdaterer sig selv.",
            job_stop_refreshing: "Stop opdateringen",
            job_refresh_now: "Opdatér",
            status_queued: "i kø",
            status_running: "i gang",
            status_done: "færdig",
            status_failed: "mislykkedes",
            job_format: "Filtype",
            job_records: "Rækker læst",
            job_imported: "Nye kontakter",
            job_updated: "Opdateret",
            job_refused: "Afvist",
            job_failed: "Filen kunne ikke importeres:",
            job_first_refused: "De første afviste rækker",
            col_line: "Linje",
            col_row: "Rækken",
            job_download_refused: "Hent alle afviste rækker (CSV)",
            job_import_another: "Importér en fil til",
            ct_new: "Ny samtykketekst",
            ct_locale: "Sprog",
            ct_company: "Virksomhedens navn",
            ct_body: "Tekst",
            ct_body_hint: "Nævn virksomheden, at det gælder SMS, og hvordan man trækker samtykket tilbage (fx ved at svare STOP).",
            ct_categories: "Emner (valgfrit)",
            ct_categories_hint: "Ét emne pr. linje.",
            ct_privacy_url: "Link til privatlivspolitik",
            ct_preview_button: "Vis eksempel",
            ct_save_button: "Gem som ny version",
            ct_refused: "Teksten blev ikke gemt. Ret det, der står ved felterne.",
            ct_preview_title: "Sådan vises samtykket på landingssiden",
            ct_preview_hint: "Eksempel: felterne kan ikke bruges her.",
            ct_sms_title: "SMS med bekræftelseskode",
            ct_sms_meta: "{encoding}, {units} tegn, {segments} SMS",
            ct_saved: "Gemt som version {version}.",
            ct_unchanged: "Teksten er identisk med version {version}; der er ikke gemt en ny version.",
            contacts_filter: "Filtrér",
            any: "Alle",
            sms_consent: "SMS-samtykke",
            sms_active: "aktivt",
            sms_none: "intet",
            suppressed: "Spærret",
            yes: "ja",
            no: "nej",
            filter_button: "Vis",
            next_page: "Næste side",
            first_page: "Første side",
            showing: "Viser {from}–{to}",
            not_found_title: "Siden findes ikke",
            not_found_body: "Der er ingen side på den adresse, eller den hører til et andet arbejdsområde.",
            not_found_link: "Til kampagnerne",
        },
        _ => &MarketerStrings {
            import_title: "Import contacts",
            import_intro: "Upload a CSV file of the people who gave you permission for email marketing. Contacts that exist already (same email) are updated; suppressed contacts stay suppressed.",
            import_formats: "optbridge's own columns (email, first_name, last_name, locale, external_id, email_consent_at, email_consent_source) are recognised, and so are Shopify customer exports, Mailchimp audience exports and Klaviyo profile exports. People the export marks as unsubscribed, cleaned or not accepting email marketing are not imported.",
            import_file_label: "CSV file",
            import_file_hint: "At most {max}. Commas, semicolons or tabs; UTF-8.",
            import_button: "Import",
            import_recent: "Recent imports",
            import_started: "Started",
            import_file: "File",
            import_error_form: "The form had expired. Reload the page and try again.",
            import_error_no_file: "Choose a CSV file to import.",
            import_error_too_large: "The file is too large: at most {max}. Split it into several files.",
            import_error_upload: "The file did not arrive completely. Please try again.",
            job_title: "Import",
            job_refreshing: "The import is running. This page refreshes itself.",
            job_stop_refreshing: "Stop refreshing",
            job_refresh_now: "Refresh",
            status_queued: "queued",
            status_running: "running",
            status_done: "done",
            status_failed: "failed",
            job_format: "File type",
            job_records: "Rows read",
            job_imported: "New contacts",
            job_updated: "Updated",
            job_refused: "Refused",
            job_failed: "The file could not be imported:",
            job_first_refused: "The first refused rows",
            col_line: "Line",
            col_row: "Row",
            job_download_refused: "Download every refused row (CSV)",
            job_import_another: "Import another file",
            ct_new: "New consent text",
            ct_locale: "Language",
            ct_company: "Company name",
            ct_body: "Text",
            ct_body_hint: "Name the company, say it is for SMS and how to withdraw (e.g. by replying STOP).",
            ct_categories: "Topics (optional)",
            ct_categories_hint: "One topic per line.",
            ct_privacy_url: "Privacy policy link",
            ct_preview_button: "Preview",
            ct_save_button: "Save as a new version",
            ct_refused: "The text was not saved. Fix what is said next to the fields.",
            ct_preview_title: "The consent as the landing page shows it",
            ct_preview_hint: "Preview: the fields cannot be used here.",
            ct_sms_title: "The double-opt-in SMS",
            ct_sms_meta: "{encoding}, {units} characters, {segments} SMS",
            ct_saved: "Saved as version {version}.",
            ct_unchanged: "The text is identical to version {version}; no new version was saved.",
            contacts_filter: "Filter",
            any: "Any",
            sms_consent: "SMS consent",
            sms_active: "active",
            sms_none: "none",
            suppressed: "Suppressed",
            yes: "yes",
            no: "no",
            filter_button: "Show",
            next_page: "Next page",
            first_page: "First page",
            showing: "Showing {from}–{to}",
            not_found_title: "Page not found",
            not_found_body: "There is no page at this address, or it belongs to another workspace.",
            not_found_link: "To the campaigns",
        },
    }
}

/// The dashboard's words for the states stored in the database (a consent's status, how it was
/// confirmed or withdrawn), in Danish or English; an unknown value is shown as stored.
pub struct StatusWords {
    words: &'static [(&'static str, &'static str)],
}

impl StatusWords {
    pub fn word<'a>(&self, stored: &'a str) -> &'a str {
        self.words
            .iter()
            .find(|(key, _)| *key == stored)
            .map_or(stored, |(_, word)| word)
    }
}

/// How the dashboard words a stored suppression reason. Reasons are stored in English, as the API
/// returns them; in Danish the forms optbridge writes itself are translated (the technical part,
/// an SMTP reply or an ESP's report, stays as received), and any other (a reason given through
/// the API) is shown as it is.
pub fn suppression_reason(locale: Locale, reason: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if locale != Locale::Da {
        return Cow::Borrowed(reason);
    }
    // "unsubscribed (…)": the unsubscribe path's own words for how it came.
    let via = |source: &str| -> String {
        match source {
            "unsubscribe link" => "afmeldingslinket".to_owned(),
            other => match other.strip_prefix("spam complaint via ") {
                Some(esp) => format!("spamklage via {esp}"),
                None => other.to_owned(),
            },
        }
    };
    match reason {
        "STOP keyword" => Cow::Borrowed("Svarede STOP på SMS"),
        "opted out at the SMS provider" => Cow::Borrowed("Afmeldt hos SMS-udbyderen"),
        "unsubscribed" => Cow::Borrowed("Afmeldt e-mail"),
        _ => {
            if let Some(detail) = reason.strip_prefix("hard bounce: ") {
                Cow::Owned(format!("Hård afvisning: {detail}"))
            } else if let Some(source) = reason.strip_prefix("unsubscribed (").and_then(|r| r.strip_suffix(')')) {
                Cow::Owned(format!("Afmeldt e-mail ({})", via(source)))
            } else {
                Cow::Borrowed(reason)
            }
        }
    }
}

pub fn status_words(locale: Locale) -> &'static StatusWords {
    match locale {
        Locale::Da => &StatusWords {
            words: &[
                ("active", "aktiv"),
                ("withdrawn", "trukket tilbage"),
                ("stop_keyword", "STOP på SMS"),
                ("erasure", "sletning"),
                ("pending", "afventer"),
                ("confirmed", "bekræftet"),
                ("expired", "udløbet"),
                ("locked", "låst"),
                ("cancelled", "annulleret"),
                ("code", "kode på siden"),
                ("sms_reply", "svar på SMS"),
                ("tap_to_text", "én SMS (tap-to-text)"),
            ],
        },
        _ => &StatusWords {
            words: &[
                ("stop_keyword", "STOP by SMS"),
                ("code", "code on the page"),
                ("sms_reply", "SMS reply"),
                ("tap_to_text", "one text (tap-to-text)"),
            ],
        },
    }
}

#[cfg(test)]
mod suppression_reason_tests {
    use super::*;

    #[test]
    fn the_reasons_optbridge_writes_are_worded_in_danish() {
        for (stored, danish) in [
            ("STOP keyword", "Svarede STOP på SMS"),
            ("opted out at the SMS provider", "Afmeldt hos SMS-udbyderen"),
            ("unsubscribed", "Afmeldt e-mail"),
            ("unsubscribed (unsubscribe link)", "Afmeldt e-mail (afmeldingslinket)"),
            (
                "unsubscribed (spam complaint via SendGrid (dropped: Spam Reporting Address))",
                "Afmeldt e-mail (spamklage via SendGrid (dropped: Spam Reporting Address))",
            ),
            (
                "unsubscribed (spam complaint via feedback loop)",
                "Afmeldt e-mail (spamklage via feedback loop)",
            ),
            (
                "hard bounce: 550 5.1.1 <bo@example.dk>: User unknown",
                "Hård afvisning: 550 5.1.1 <bo@example.dk>: User unknown",
            ),
            // Given through the API: the shop's own words, shown as they are.
            ("bounced in our old system", "bounced in our old system"),
        ] {
            assert_eq!(suppression_reason(Locale::Da, stored), danish);
            assert_eq!(suppression_reason(Locale::En, stored), stored);
        }
    }
}

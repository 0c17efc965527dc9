//! The dashboard's users, invitation and activity pages, and the invitation email, in English
//! and Danish (like the rest of the dashboard).

use crate::accounts::Role;
use crate::activity::Action;
use crate::domain::Locale;

pub struct TeamStrings {
    pub nav_users: &'static str,
    pub nav_activity: &'static str,
    pub users_title: &'static str,
    pub col_email: &'static str,
    pub col_role: &'static str,
    pub col_last_login: &'static str,
    pub never: &'static str,
    pub you: &'static str,
    pub change_role: &'static str,
    pub remove: &'static str,
    pub remove_label: &'static str,
    pub roles_help: &'static str,
    pub invite_title: &'static str,
    pub invite_help: &'static str,
    pub invite_button: &'static str,
    pub invited: &'static str,
    pub pending_title: &'static str,
    pub col_invited_by: &'static str,
    pub col_expires: &'static str,
    pub role_changed: &'static str,
    pub removed: &'static str,
    pub last_owner: &'static str,
    pub user_exists: &'static str,
    pub bad_email: &'static str,
    pub form_expired: &'static str,
    pub accept_title: &'static str,
    pub accept_intro: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    pub password_rule: &'static str,
    pub passwords_differ: &'static str,
    pub accept_button: &'static str,
    pub accepted: &'static str,
    pub link_invalid_title: &'static str,
    pub link_invalid_body: &'static str,
    pub to_login: &'static str,
    pub activity_title: &'static str,
    pub col_when: &'static str,
    pub col_who: &'static str,
    pub col_what: &'static str,
    pub col_subject: &'static str,
    pub col_detail: &'static str,
    pub no_activity: &'static str,
    pub older: &'static str,
    pub newest: &'static str,
    pub mail_subject: &'static str,
    pub mail_body: &'static str,
}

pub fn strings(locale: Locale) -> &'static TeamStrings {
    match locale {
        Locale::Da => &TeamStrings {
            nav_users: "Brugere",
            nav_activity: "Aktivitet",
            users_title: "Brugere",
            col_email: "E-mail",
            col_role: "Rolle",
            col_last_login: "Sidst logget ind",
            never: "aldrig",
            you: "dig",
            change_role: "Skift rolle",
            remove: "Fjern",
            remove_label: "Fjern {email}",
            roles_help: "Ejere styrer også brugerne. Redaktører gør alt andet. Læsere kan kun se.",
            invite_title: "Inviter en bruger",
            invite_help: "Vi sender en e-mail med et link, hvor personen selv vælger en adgangskode. Linket virker én gang i 72 timer.",
            invite_button: "Send invitation",
            invited: "Invitationen er sendt.",
            pending_title: "Ventende invitationer",
            col_invited_by: "Inviteret af",
            col_expires: "Udløber",
            role_changed: "Rollen er ændret.",
            removed: "Brugeren er fjernet.",
            last_owner: "Et workspace skal altid have en ejer. Gør en anden bruger til ejer først.",
            user_exists: "Der findes allerede en bruger med denne e-mail.",
            bad_email: "Det er ikke en gyldig e-mailadresse.",
            form_expired: "Formularen var udløbet. Prøv igen.",
            accept_title: "Vælg din adgangskode",
            accept_intro: "Du er inviteret til {workspace} som {role}. Vælg en adgangskode til {email}.",
            new_password: "Adgangskode",
            repeat_password: "Gentag adgangskoden",
            password_rule: "Mindst 10 tegn.",
            passwords_differ: "De to adgangskoder er ikke ens.",
            accept_button: "Gem adgangskode",
            accepted: "Din adgangskode er gemt. Log ind.",
            link_invalid_title: "Linket virker ikke",
            link_invalid_body: "Invitationslinket er ukendt, allerede brugt eller udløbet. Bed en ejer om en ny invitation.",
            to_login: "Til login",
            activity_title: "Aktivitet",
            col_when: "Hvornår (UTC)",
            col_who: "Hvem",
            col_what: "Hvad",
            col_subject: "Emne",
            col_detail: "Detaljer",
            no_activity: "Ingen aktivitet endnu.",
            older: "Ældre",
            newest: "Nyeste",
            mail_subject: "Invitation til {workspace} i optbridge",
            mail_body: "Hej\n\n{inviter} har inviteret dig til {workspace} i optbridge som {role}.\n\nVælg din adgangskode her (linket virker én gang og udløber om 72 timer):\n{link}\n\nHvis du ikke ventede denne e-mail, kan du se bort fra den.",
        },
        _ => &TeamStrings {
            nav_users: "Users",
            nav_activity: "Activity",
            users_title: "Users",
            col_email: "Email",
            col_role: "Role",
            col_last_login: "Last login",
            never: "never",
            you: "you",
            change_role: "Change role",
            remove: "Remove",
            remove_label: "Remove {email}",
            roles_help: "Owners also manage users. Editors do everything else. Viewers only read.",
            invite_title: "Invite a user",
            invite_help: "We email a link where the person chooses a password. The link works once, for 72 hours.",
            invite_button: "Send invitation",
            invited: "The invitation was sent.",
            pending_title: "Pending invitations",
            col_invited_by: "Invited by",
            col_expires: "Expires",
            role_changed: "The role was changed.",
            removed: "The user was removed.",
            last_owner: "A workspace always needs an owner. Make another user owner first.",
            user_exists: "A user with this email exists already.",
            bad_email: "That is not a valid email address.",
            form_expired: "The form had expired. Please try again.",
            accept_title: "Choose your password",
            accept_intro: "You are invited to {workspace} as {role}. Choose a password for {email}.",
            new_password: "Password",
            repeat_password: "Repeat the password",
            password_rule: "At least 10 characters.",
            passwords_differ: "The two passwords differ.",
            accept_button: "Save password",
            accepted: "Your password is saved. Log in.",
            link_invalid_title: "This link does not work",
            link_invalid_body: "The invitation link is unknown, used already or expired. Ask an owner for a new invitation.",
            to_login: "To the login",
            activity_title: "Activity",
            col_when: "When (UTC)",
            col_who: "Who",
            col_what: "What",
            col_subject: "Subject",
            col_detail: "Detail",
            no_activity: "No activity yet.",
            older: "Older",
            newest: "Newest",
            mail_subject: "Invitation to {workspace} on optbridge",
            mail_body: "Hello\n\n{inviter} invited you to {workspace} on optbridge as {role}.\n\nChoose your password here (the link works once and expires in 72 hours):\n{link}\n\nIf you did not expect this email, you can ignore it.",
        },
    }
}

/// A role's name in the dashboard's language.
pub fn role(locale: Locale, role: Role) -> &'static str {
    match (locale, role) {
        (Locale::Da, Role::Owner) => "ejer",
        (Locale::Da, Role::Editor) => "redaktør",
        (Locale::Da, Role::Viewer) => "læser",
        (_, Role::Owner) => "owner",
        (_, Role::Editor) => "editor",
        (_, Role::Viewer) => "viewer",
    }
}

/// What an activity-log entry records, in the dashboard's language.
pub fn action(locale: Locale, action: Action) -> &'static str {
    let da = locale == Locale::Da;
    match action {
        Action::Login => {
            if da {
                "loggede ind"
            } else {
                "logged in"
            }
        }
        Action::Import => {
            if da {
                "importerede kontakter"
            } else {
                "imported contacts"
            }
        }
        Action::ConsentTextCreated => {
            if da {
                "oprettede en samtykketekst"
            } else {
                "created a consent text"
            }
        }
        Action::CampaignCreated => {
            if da {
                "oprettede en kampagne"
            } else {
                "created a campaign"
            }
        }
        Action::CampaignEdited => {
            if da {
                "redigerede en kampagne"
            } else {
                "edited a campaign"
            }
        }
        Action::CampaignTestSent => {
            if da {
                "sendte en test"
            } else {
                "sent a test"
            }
        }
        Action::CampaignScheduled => {
            if da {
                "planlagde en kampagne"
            } else {
                "scheduled a campaign"
            }
        }
        Action::CampaignSent => {
            if da {
                "sendte en kampagne"
            } else {
                "sent a campaign"
            }
        }
        Action::CampaignPaused => {
            if da {
                "satte en kampagne på pause"
            } else {
                "paused a campaign"
            }
        }
        Action::CampaignResumed => {
            if da {
                "genoptog en kampagne"
            } else {
                "resumed a campaign"
            }
        }
        Action::CampaignCancelled => {
            if da {
                "annullerede en kampagne"
            } else {
                "cancelled a campaign"
            }
        }
        Action::ContactErased => {
            if da {
                "slettede en kontakts personoplysninger"
            } else {
                "erased a contact's personal data"
            }
        }
        Action::UserInvited => {
            if da {
                "inviterede en bruger"
            } else {
                "invited a user"
            }
        }
        Action::UserRoleChanged => {
            if da {
                "ændrede en brugers rolle"
            } else {
                "changed a user's role"
            }
        }
        Action::UserRemoved => {
            if da {
                "fjernede en bruger"
            } else {
                "removed a user"
            }
        }
        Action::WebhookCreated => {
            if da {
                "oprettede en webhook"
            } else {
                "created a webhook"
            }
        }
        Action::WebhookDeleted => {
            if da {
                "slettede en webhook"
            } else {
                "deleted a webhook"
            }
        }
        Action::UserJoined => {
            if da {
                "tog imod en invitation"
            } else {
                "accepted an invitation"
            }
        }
    }
}

//! Parse-don't-validate newtypes: a value of one of these types has passed its only constructor.

mod channel;
mod country;
mod email_address;
mod hidden_control;
mod locale;
mod mobile_number;

pub use channel::{Channel, Direction};
pub use country::CountryCode;
pub use email_address::{EmailAddress, EmailAddressError};
pub use hidden_control::{HiddenControl, check_visible, is_hidden_control};
pub use locale::Locale;
pub use mobile_number::{MobileNumber, PhoneError};

//! ISO 3166-1 alpha-2 country codes, and the currency an account in each country pays in.

use barrack_api::Currency;

const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO \
BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET \
FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS \
IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP \
MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO \
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ \
UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Countries of Europe (accounts there pay in EUR).
const EUROPE: &str = "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU \
LV MC MD ME MK MT NL NO PL PT RO RS SE SI SJ SK SM UA VA";

/// Normalises a country code to upper case; `None` if it is not an ISO 3166-1 alpha-2 code.
pub fn normalize(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    (code.len() == 2 && ISO_3166_ALPHA2.split(' ').any(|c| c == code)).then_some(code)
}

/// India → INR, European countries → EUR, everyone else (and no country yet) → USD.
pub fn currency_for(country: Option<&str>) -> Currency {
    match country {
        Some("IN") => Currency::INR,
        Some(c) if EUROPE.split(' ').any(|e| e == c) => Currency::EUR,
        _ => Currency::USD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_follows_the_country() {
        assert_eq!(currency_for(Some("IN")), Currency::INR);
        assert_eq!(currency_for(Some("DE")), Currency::EUR);
        assert_eq!(currency_for(Some("FI")), Currency::EUR);
        assert_eq!(currency_for(Some("US")), Currency::USD);
        assert_eq!(currency_for(None), Currency::USD);
        assert_eq!(normalize("de").as_deref(), Some("DE"));
        assert_eq!(normalize("XX"), None);
        assert_eq!(normalize("DEU"), None);
    }
}

//! Hiding the password inside a database URL before it is printed.

use crate::secret::REDACTED;

/// `url` with the password of its user-info and any `password=` query parameter replaced by
/// `[redacted]`; user, host, port and database stay, since those are what an operator checks.
///
/// Passwords often hold unescaped `/`, `?` or `#`, so user-info ends at the *last* `@`: a URL
/// with `@` further on loses more than its password, never less.
pub(crate) fn database_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    let mut shown = format!("{scheme}://");
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    shown.push_str(user);
                    shown.push(':');
                    shown.push_str(REDACTED);
                }
                None => shown.push_str(userinfo),
            }
            &rest[at..]
        }
        None => rest,
    };
    shown.push_str(&redact_query(after_userinfo));
    shown
}

/// `text` with the values of `password` and `sslpassword` query parameters redacted.
fn redact_query(text: &str) -> String {
    let Some((base, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _))
                if name.eq_ignore_ascii_case("password")
                    || name.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{name}={REDACTED}")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_goes_user_and_host_stay() {
        assert_eq!(
            database_url("postgres://shop:s3cret@db.internal:5432/mindshop?sslmode=require"),
            "postgres://shop:[redacted]@db.internal:5432/mindshop?sslmode=require"
        );
    }

    #[test]
    fn unescaped_specials_in_password_do_not_leak() {
        let shown = database_url("postgresql://shop:p@ss/w?rd#x@db:5432/mindshop");
        assert_eq!(shown, "postgresql://shop:[redacted]@db:5432/mindshop");
    }

    #[test]
    fn query_passwords_are_redacted() {
        assert_eq!(
            database_url("postgres://db/mindshop?user=shop&password=s3cret"),
            "postgres://db/mindshop?user=shop&password=[redacted]"
        );
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        for url in [
            "sqlite://data/mindshop.db",
            "sqlite::memory:",
            "postgres://shop@db/m",
        ] {
            assert_eq!(database_url(url), url);
        }
    }
}

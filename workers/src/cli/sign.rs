//! `moked-worker sign`: signs a webhook the way Twilio does, to test a deployment by hand.
//!
//! `moked-worker sign --url URL [-p Name=Value]... [--token T]` prints the base64
//! `X-Twilio-Signature` alone; `--curl` prints a ready `curl` command that posts the form with
//! that signature. The URL must be the public one Twilio would call (PUBLIC_HOST + path + query).

use clap::Args;
use moked_jobs::signature;

/// `sign` arguments.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// The full public URL the webhook is posted to (PUBLIC_HOST + path + query).
    #[arg(long)]
    pub url: String,
    /// A form parameter, `Name=Value` (repeat for more; repeated names are allowed).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The auth token to sign with.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print a curl command instead of the bare signature.
    #[arg(long)]
    pub curl: bool,
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No token given.
    #[error("no token: pass --token or set TWILIO_AUTH_TOKEN")]
    NoToken,
    /// A parameter without `=`.
    #[error("parameter `{0}` is not Name=Value")]
    BadParam(String),
    /// A URL that does not parse.
    #[error("`{0}` is not a URL")]
    BadUrl(String),
}

/// Quotes a string for a POSIX shell.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Produces what `sign` prints.
pub fn execute(args: &SignArgs) -> Result<String, SignError> {
    let token = args
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(SignError::NoToken)?;
    url::Url::parse(&args.url).map_err(|_| SignError::BadUrl(args.url.clone()))?;
    let params = args
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| SignError::BadParam(p.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sig = signature::compute(token, &args.url, &params);
    if !args.curl {
        return Ok(sig);
    }
    let mut cmd = format!(
        "curl -sS -i -X POST {} \\\n  -H {} \\\n  -H {}",
        sh(&args.url),
        sh(&format!("X-Twilio-Signature: {sig}")),
        sh("Content-Type: application/x-www-form-urlencoded"),
    );
    for (k, v) in &params {
        cmd.push_str(&format!(
            " \\\n  --data-urlencode {}",
            sh(&format!("{k}={v}"))
        ));
    }
    if params.is_empty() {
        cmd.push_str(" \\\n  --data ''");
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(params: &[&str], curl: bool) -> SignArgs {
        SignArgs {
            url: "https://mycompany.com/myapp.php?foo=1&bar=2".into(),
            params: params.iter().map(|s| (*s).to_owned()).collect(),
            token: Some("12345".into()),
            curl,
        }
    }

    #[test]
    fn signs_the_twilio_docs_example() {
        let p = [
            "CallSid=CA1234567890ABCDE",
            "Caller=+14158675309",
            "Digits=1234",
            "From=+14158675309",
            "To=+18005551212",
        ];
        assert_eq!(
            execute(&args(&p, false)).unwrap(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        let curl = execute(&args(&p, true)).unwrap();
        assert!(curl.contains("X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(curl.contains("--data-urlencode 'Caller=+14158675309'"));
    }

    #[test]
    fn refuses_a_missing_token_and_malformed_params() {
        let mut a = args(&["NoEquals"], false);
        assert!(matches!(execute(&a), Err(SignError::BadParam(_))));
        a.token = None;
        assert!(matches!(execute(&a), Err(SignError::NoToken)));
    }
}

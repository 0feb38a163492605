//! Python packages the tests import — PyJWT with cryptography
//! (tests/process/auth_keys.rs), standardwebhooks (tests/webhooks.rs) —
//! written by others, so the server is checked against an implementation
//! nobody here wrote. scripts/test.sh installs them into .tools/ and exports
//! their directory; a test run on its own installs them there with pip.

use std::path::PathBuf;
use std::process::Command;

/// The directory `pins` are imported from: `$env_var` if set, else
/// `.tools/<subdir>`, installed there with pip when `import` fails. Nothing
/// is skipped: without python3 or pip this panics and says so.
pub fn packages(env_var: &str, subdir: &str, import: &str, pins: &[&str]) -> PathBuf {
    let dir = std::env::var_os(env_var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools").join(subdir));
    let probe = || {
        Command::new("python3")
            .args(["-c", &format!("import {import}")])
            .env("PYTHONPATH", &dir)
            .output()
            .map(|o| o.status.success())
    };
    match probe() {
        Ok(true) => return dir,
        Ok(false) => {}
        Err(e) => panic!(
            "cannot run python3 ({e}): these tests use Python {}; install python3 with pip (scripts/test.sh \
             needs it too)",
            pins.join(", ")
        ),
    }
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "--target"])
        .arg(&dir)
        .args(pins)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output()
        .expect("run python3 -m pip");
    assert!(
        install.status.success(),
        "`python3 -m pip install --target {} {}` failed (is pip installed? scripts/test.sh installs them): {}",
        dir.display(),
        pins.join(" "),
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(probe().unwrap_or(false), "{pins:?} installed into {}, but `import {import}` still fails", dir.display());
    dir
}

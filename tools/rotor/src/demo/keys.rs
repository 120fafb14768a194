//! iam-rotation in the demo: an IAM user's access key in a second moto
//! server with IAM authentication on; STS then checks which key signs in,
//! and the user's key list shows the overlap (the previous key stays active
//! until the next rotation).

use std::fmt::Write as _;
use std::time::Duration;

use rotor_core::labels::{AWSCURRENT, AWSPREVIOUS};
use rotor_core::{AwsStore, ExposeSecret};

use rotor_testbed::moto::Moto;

use super::Checked;
use super::metrics::Tally;
use super::report::summary;
use crate::function::{LocalFunction, function_binary};
use crate::iam_bed::IamBed;
use crate::rotate::{RotateOptions, rotate};

/// One IAM user's access key, rotated; STS checks which key signs in.
pub(super) async fn rotate_access_key(
    moto: &Moto,
    store: &AwsStore,
    out: &mut String,
    tally: &mut Tally,
) -> anyhow::Result<Checked> {
    let name = "demo/ci-access-key";
    let (bed, mut env) = IamBed::start(store, moto.endpoint(), name, "ci-deploy").await?;
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "warn".into()));
    let function = LocalFunction::start(&function_binary("iam-rotation"), &env).await?;
    let _ = writeln!(
        out,
        "\niam-rotation (cold start {:.1} ms)\n  {name} (IAM user ci-deploy in moto's IAM with authentication on; two keys overlap)",
        function.cold_start().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let options = RotateOptions {
        secret_id: name.into(),
        token: None,
        test_only: false,
        step_timeout: Duration::from_secs(60),
    };
    let run = rotate(store, &function, &options).await?;
    out.push_str(&summary(&run));
    let mut checked = Checked {
        completed: 0,
        total: 1,
        leaked: false,
    };
    let current = IamBed::stored_key(store, name, AWSCURRENT).await?;
    let previous = IamBed::stored_key(store, name, AWSPREVIOUS).await?;
    let (new_ok, old_ok) = (
        bed.signs_in(&current.0, &current.1).await,
        bed.signs_in(&previous.0, &previous.1).await,
    );
    let keys = bed.keys().await?;
    let verdict = |ok: bool| if ok { "signs in" } else { "refused" };
    let _ = writeln!(
        out,
        "    checked with STS: AWSCURRENT's key {} {}, AWSPREVIOUS's key {} {} (active until the next rotation); the user holds {} keys",
        current.0,
        verdict(new_ok),
        previous.0,
        verdict(old_ok),
        keys.len()
    );
    if run.succeeded() && new_ok && old_ok && keys.len() == 2 {
        checked.completed = 1;
    }
    let logs = function.output();
    tally.add("iam-rotation", &logs);
    checked.leaked = [&current.1, &previous.1]
        .iter()
        .any(|k| logs.contains(k.expose_secret()));
    Ok(checked)
}

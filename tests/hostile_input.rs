//! The `opml` binary under hostile or careless input (issue 20): each case must end with a clear
//! error and exit status 2, or quietly, never with a panic, a hang or an unbounded allocation.
//! Among them, operator keys that cannot sign: an unset `--private-key-env` variable, a
//! `--keystore` with a wrong, missing or unreadable password.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const OPML: &str = env!("CARGO_BIN_EXE_opml");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `opml args` in the repository; returns (exit status, stderr).
fn opml(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(OPML)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A copy of the MNIST MLP whose input shape is `shape` (JSON).
fn model_with_input(tag: &str, shape: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opml-hostile-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = std::fs::read_to_string(repo("models/mnist-mlp/model.json")).unwrap();
    let json = json.replacen("1,\n      28,\n      28", shape, 1);
    std::fs::write(dir.join("model.json"), json).unwrap();
    std::fs::copy(
        repo("models/mnist-mlp/weights.safetensors"),
        dir.join("weights.safetensors"),
    )
    .unwrap();
    dir
}

#[test]
fn bad_arguments_and_files_are_named_errors_with_status_2() {
    let huge = model_with_input("huge", "1000000,\n      1000000");
    let overflow = model_with_input(
        "overflow",
        "4294967296,\n      4294967296,\n      4294967296",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["model", "info", huge.to_str().unwrap()],
            "a request carries at most 65536",
        ),
        (
            vec!["model", "info", overflow.to_str().unwrap()],
            "a request carries at most 65536",
        ),
        (
            vec![
                "dispute",
                "simulate",
                "models/mnist-cnn",
                "x.pgm",
                "--arity",
                "1",
            ],
            "--arity",
        ),
        (vec!["demo", "--arity", "0"], "--arity"),
        (
            vec!["demo", "--fault", "node=9"],
            "the model has nodes 0..7",
        ),
        (
            vec!["demo", "--model", "models/mnist-mlp", "--fault", "node=5"],
            "--fault node=5 on models/mnist-mlp",
        ),
        (
            vec!["deploy", "--model", "models/mnist-cnn", "--arity", "257"],
            "--arity",
        ),
        (
            vec![
                "request",
                "--game",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "--digit",
                "0",
                "--account",
                "4294967295",
            ],
            "--account",
        ),
    ];
    for (args, want) in cases {
        let (code, stderr) = opml(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    for dir in [huge, overflow] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    // A pipe whose reader is gone before the first write, as `| head -1` leaves it after its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(OPML)
        .args(["model", "info", "models/mnist-cnn", "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

/// Runs `opml args` in `dir`; returns (exit status, stdout, stderr).
fn opml_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(OPML)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A fresh empty directory under the system's temporary one.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opml-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A calibration that would quietly write a useless model (no images, or the held-out split
/// whose accuracy it would then fake) is refused, and nothing is written.
#[test]
fn import_refuses_zero_samples_and_the_test_split() {
    let out = scratch("import");
    let model = out.join("model");
    let model = model.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--calibration", "data/mnist/test.safetensors"],
            "held-out test split",
        ),
        (
            &[
                "--calibration",
                "data/mnist/test.safetensors",
                "--samples",
                "10",
            ],
            "held-out test split",
        ),
        (
            &[
                "--calibration",
                "data/mnist/train.safetensors",
                "--samples",
                "0",
            ],
            "--samples 0",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["model", "import", "models/mnist-mlp", "--out", model];
        args.extend_from_slice(extra);
        let (code, stderr) = opml(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!Path::new(model).exists(), "{args:?} wrote a model");
    }
    let _ = std::fs::remove_dir_all(out);
}

/// Outside the repository the tour names what it cannot find instead of running half and
/// printing that every check passed.
#[test]
fn the_tour_outside_the_repository_names_what_is_missing() {
    let dir = scratch("tour-outside");
    let (code, stdout, stderr) = opml_in(&dir, &["vm", "tour"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("target/riscv-programs/primes.elf not found")
            && stderr.contains("vm/tests/programs/build.sh"),
        "{stderr}"
    );
    assert!(!stdout.contains("every check passed"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// On a fresh clone (the build script, no target/riscv-programs, no MNIST model) the tour builds
/// its program, runs, and says that it skipped the MNIST part rather than that everything passed.
#[test]
fn the_tour_on_a_fresh_clone_builds_its_program_and_says_what_it_skipped() {
    let dir = scratch("tour-fresh");
    std::fs::create_dir_all(dir.join("vm/tests")).unwrap();
    std::os::unix::fs::symlink(repo("vm/tests/programs"), dir.join("vm/tests/programs")).unwrap();
    let (code, stdout, stderr) = opml_in(&dir, &["vm", "tour"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        dir.join("target/riscv-programs/primes.elf").exists(),
        "{stderr}"
    );
    assert!(stdout.contains("-- 5. MNIST: SKIPPED"), "{stdout}");
    assert!(
        stdout.contains("SKIPPED: MNIST nodes in the VM"),
        "{stdout}"
    );
    assert!(!stdout.contains("every check passed"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `opml model import` of the ONNX export of the MNIST CNN writes the committed integer model (same
/// commitment); an ONNX file that is truncated or holds an op the importer does not map is a named
/// error with status 2, and nothing is written.
#[test]
fn onnx_import_gives_the_committed_model_and_names_bad_files() {
    let dir = scratch("onnx");
    let model = dir.join("model");
    let import = |file: &Path| {
        let args = ["model", "import", file.to_str().unwrap(), "--out"];
        let extra = ["--calibration", "data/mnist/train.safetensors"];
        opml_in(
            &repo("."),
            &[&args[..], &[model.to_str().unwrap()], &extra].concat(),
        )
    };
    let (code, stdout, stderr) = import(&repo("models/mnist-cnn/float.onnx"));
    assert_eq!(code, Some(0), "{stderr}");
    let (_, info, _) = opml_in(&repo("."), &["model", "info", "models/mnist-cnn", "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let commitment = info["commitment"].as_str().unwrap();
    assert!(
        stdout.contains(&format!("model commitment {commitment}")),
        "{stdout}"
    );
    std::fs::remove_dir_all(&model).unwrap();

    let onnx = std::fs::read(repo("models/mnist-cnn/float.onnx")).unwrap();
    // Tanh has Relu's length, so the protobuf stays well formed.
    let relu = onnx.windows(4).position(|w| w == b"Relu").unwrap();
    let mut tanh = onnx.clone();
    tanh[relu..relu + 4].copy_from_slice(b"Tanh");
    let cases: [(&str, &[u8], &str); 2] = [
        (
            "truncated.onnx",
            &onnx[..onnx.len() - 1000],
            "truncated.onnx: not an ONNX model (protobuf decoding failed",
        ),
        (
            "tanh.onnx",
            &tanh,
            "tanh.onnx: node 1 (\"relu1\", Tanh): op Tanh is not supported; supported: Conv, Gemm",
        ),
    ];
    for (name, bytes, want) in cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let (code, _, stderr) = import(&file);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(!model.exists(), "{name}: wrote a model");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `opml deploy` and `opml request` with a key that cannot sign: exit status 2 and an error naming
/// the variable or file, before any node is asked anything; with the right password, the key
/// signs and the error is the node's (nothing listens on the port).
#[test]
fn operator_keys_that_cannot_sign_are_named_errors_with_status_2() {
    use alloy::signers::local::PrivateKeySigner;
    use rand::SeedableRng;
    let dir = scratch("keys");
    PrivateKeySigner::encrypt_keystore(
        &dir,
        &mut rand::rngs::StdRng::seed_from_u64(3),
        alloy::primitives::B256::repeat_byte(0x33),
        "right",
        Some("key.json"),
    )
    .unwrap();
    std::fs::write(dir.join("right.txt"), "right\n").unwrap();
    std::fs::write(dir.join("wrong.txt"), "wrong\n").unwrap();
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (key, right, wrong, missing) = (
        at("key.json"),
        at("right.txt"),
        at("wrong.txt"),
        at("missing.json"),
    );
    let deploy = [
        "deploy",
        "--model",
        "models/mnist-cnn",
        "--rpc",
        "http://127.0.0.1:9",
    ];
    let request = [
        "request",
        "--game",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--digit",
        "0",
        "--rpc",
        "http://127.0.0.1:9",
    ];
    let unset = "OPML_TEST_UNSET_KEY_5C2E";
    // (command, its key arguments, OPML_KEYSTORE_PASSWORD, what stderr names)
    let cases: Vec<(&[&str], Vec<&str>, Option<&str>, Vec<&str>)> = vec![
        (
            &deploy,
            vec!["--private-key-env", unset],
            None,
            vec![unset, "not set"],
        ),
        (
            &request,
            vec!["--private-key-env", unset],
            None,
            vec![unset, "not set"],
        ),
        (
            &deploy,
            vec!["--keystore", &key, "--password-file", &wrong],
            Some("right"),
            vec!["cannot decrypt", &key, "wrong password?"],
        ),
        (
            &request,
            vec!["--keystore", &key],
            Some("wrong"),
            vec!["cannot decrypt", &key, "wrong password?"],
        ),
        (
            &deploy,
            vec!["--keystore", &key],
            None,
            vec![&key, "OPML_KEYSTORE_PASSWORD", "--password-file"],
        ),
        (
            &deploy,
            vec!["--keystore", &missing],
            Some("right"),
            vec![&missing, "cannot read"],
        ),
        (
            &deploy,
            vec!["--keystore", &key, "--password-file", &missing],
            None,
            vec!["password file", &missing],
        ),
        (
            &deploy,
            vec!["--keystore", &right, "--password-file", &right],
            None,
            vec![&right, "not an encrypted keystore"],
        ),
        (
            &deploy,
            vec!["--private-key-env", unset, "--keystore", &key],
            None,
            vec!["cannot be used with"],
        ),
        (
            &deploy,
            vec!["--password-file", &right],
            None,
            vec!["--keystore"],
        ),
        (
            &request,
            vec!["--account", "3", "--keystore", &key],
            None,
            vec!["cannot be used with"],
        ),
        // The right password: the key signs, and what fails is reaching the node.
        (
            &deploy,
            vec!["--keystore", &key, "--password-file", &right],
            None,
            vec!["reaching the chain"],
        ),
        (
            &request,
            vec!["--keystore", &key],
            Some("right"),
            vec!["reaching the chain"],
        ),
    ];
    for (command, keys, password, want) in cases {
        let mut cmd = Command::new(OPML);
        cmd.args(command)
            .args(&keys)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .env_remove(unset)
            .env_remove("OPML_KEYSTORE_PASSWORD");
        if let Some(password) = password {
            cmd.env("OPML_KEYSTORE_PASSWORD", password);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("{} {keys:?}", command[0]);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        for w in want {
            assert!(stderr.contains(w), "{what}: wants {w:?} in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

//! Running a target: the corpus first as it is, then generated cases until the time is up, each
//! on a worker thread under `catch_unwind` and a time bound.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::mutate::Mutator;
use crate::rng::Rng;

/// A fuzz target: a function of arbitrary bytes that must never panic nor take long.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name: of the test, of the folder under `corpus/`, of its artifacts.
    pub name: &'static str,
    /// The extension of its artifacts (`yaml`, `csv`, `json`).
    pub extension: &'static str,
    /// Runs one input; a panic is a failure.
    pub run: fn(&[u8]),
    /// Tokens of the format for the mutator (keys, keywords, punctuation).
    pub tokens: &'static [&'static str],
    /// Stack of the worker thread, as large as that of the thread the product runs this code
    /// on (8 MiB for a process's main thread, 2 MiB for a tokio worker).
    pub stack_size: usize,
}

/// How long to run and what to replay; see [`Config::from_env`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Generated cases are made until this much time has passed (the corpus always runs whole).
    pub duration: Duration,
    /// The seed of the generated cases.
    pub seed: u64,
    /// Run only this generated case of `seed`.
    pub case: Option<u64>,
    /// Run only this file.
    pub replay: Option<PathBuf>,
    /// Any one input taking longer than this is a failure.
    pub time_limit: Duration,
    /// Generated inputs are cut to this many bytes.
    pub max_len: usize,
    /// Write each input to `artifacts/<target>-current` before running it, so that an input
    /// that aborts the process (a stack overflow) is on disk.
    pub save_current: bool,
    /// Where the corpus folders are (`fuzz/corpus`).
    pub corpus_dir: PathBuf,
    /// Where failing inputs are written (`fuzz/artifacts`).
    pub artifacts_dir: PathBuf,
}

/// Environment variable: seconds of generated cases per target (default 3).
pub const SECONDS_VAR: &str = "HOIST_FUZZ_SECONDS";
/// Environment variable: the seed (default: from the clock, printed).
pub const SEED_VAR: &str = "HOIST_FUZZ_SEED";
/// Environment variable: run only this case of the seed.
pub const CASE_VAR: &str = "HOIST_FUZZ_CASE";
/// Environment variable: run only this file (through each target whose name its path has).
pub const REPLAY_VAR: &str = "HOIST_FUZZ_REPLAY";
/// Environment variable: the time bound of one input, milliseconds (default 2000).
pub const TIME_LIMIT_VAR: &str = "HOIST_FUZZ_TIME_LIMIT_MS";
/// Environment variable: the longest generated input, bytes (default 131072).
pub const MAX_LEN_VAR: &str = "HOIST_FUZZ_MAX_LEN";
/// Environment variable: set to 1 to write each input to `artifacts/<target>-current` first.
pub const SAVE_CURRENT_VAR: &str = "HOIST_FUZZ_SAVE_CURRENT";

impl Config {
    /// The configuration from the environment (see the `*_VAR` constants), for `target`: its
    /// default seed mixes the clock with the target's name, so targets run on different seeds.
    pub fn from_env(target: &str) -> Result<Config, String> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => {
                    text.trim().replace('_', "").parse().map(Some).map_err(|_| {
                        format!("{name}=`{text}` is not a number of the expected kind")
                    })
                }
                _ => Ok(None),
            }
        }
        let seconds: f64 = var(SECONDS_VAR)?.unwrap_or(3.0);
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(format!("{SECONDS_VAR} must be a number of seconds >= 0"));
        }
        let seed = match var::<u64>(SEED_VAR)? {
            Some(seed) => seed,
            None => {
                let clock = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let name = target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                // Short enough to type.
                Rng::new(clock ^ name ^ u64::from(std::process::id())).next_u64() % 1_000_000_000
            }
        };
        // Read when it runs (cargo sets it for tests): a test binary reused from a target
        // directory another checkout built still finds this checkout's corpus.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        Ok(Config {
            duration: Duration::from_secs_f64(seconds),
            seed,
            case: var(CASE_VAR)?,
            replay: std::env::var_os(REPLAY_VAR)
                .filter(|p| !p.is_empty())
                .map(|p| resolve(&dir, PathBuf::from(p))),
            time_limit: Duration::from_millis(var(TIME_LIMIT_VAR)?.unwrap_or(2_000)),
            max_len: var(MAX_LEN_VAR)?.unwrap_or(128 * 1024),
            save_current: var::<u32>(SAVE_CURRENT_VAR)?.unwrap_or(0) != 0,
            corpus_dir: dir.join("corpus"),
            artifacts_dir: dir.join("artifacts"),
        })
    }
}

/// A path as given, or (tests run in `fuzz/`) relative to the workspace root or to `fuzz/`.
fn resolve(crate_dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path;
    }
    [crate_dir.parent().unwrap_or(crate_dir), crate_dir]
        .iter()
        .map(|base| base.join(&path))
        .find(|p| p.exists())
        .unwrap_or(path)
}

/// Which input failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Case {
    /// A corpus file as it is.
    Corpus(PathBuf),
    /// Generated case `n` of the seed.
    Generated(u64),
    /// The file given to replay.
    Replay(PathBuf),
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The target panicked, with this message and location.
    Panic(String),
    /// The input took longer than the time bound (and again when run a second time).
    TooSlow(Duration),
}

/// A failing input.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The target.
    pub target: &'static str,
    /// The seed of the run.
    pub seed: u64,
    /// Which input.
    pub case: Case,
    /// What happened.
    pub kind: FailureKind,
    /// The input.
    pub input: Vec<u8>,
    /// Where the input was written, when it was.
    pub artifact: Option<PathBuf>,
    /// Other corpus files that fail too (every corpus file runs before a failure is reported).
    pub also: Vec<(PathBuf, FailureKind)>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            FailureKind::Panic(message) => format!("panicked: {message}"),
            FailureKind::TooSlow(limit) => format!(
                "took longer than {} ms (twice): a hang or a very slow input",
                limit.as_millis()
            ),
        };
        writeln!(f, "fuzz target `{}` {what}", self.target)?;
        let test = format!("cargo test -p hoist-fuzz --test fuzz {}", self.target);
        match &self.case {
            Case::Corpus(path) => writeln!(f, "input: the corpus file {}", path.display())?,
            Case::Generated(n) => {
                writeln!(f, "input: case {n} of seed {}", self.seed)?;
                writeln!(
                    f,
                    "replay the case: {SEED_VAR}={} {CASE_VAR}={n} {test}",
                    self.seed
                )?;
            }
            Case::Replay(path) => writeln!(f, "input: {}", path.display())?,
        }
        if let Some(artifact) = &self.artifact {
            if matches!(self.case, Case::Generated(_)) {
                writeln!(f, "written to: {}", artifact.display())?;
            }
            writeln!(
                f,
                "replay the file: {REPLAY_VAR}={} {test}",
                artifact.display()
            )?;
        }
        for (path, kind) in &self.also {
            let what = match kind {
                FailureKind::Panic(message) => message.lines().collect::<Vec<_>>().join(" / "),
                FailureKind::TooSlow(limit) => format!("over {} ms", limit.as_millis()),
            };
            writeln!(
                f,
                "also failing: the corpus file {}: {what}",
                path.display()
            )?;
        }
        let preview = String::from_utf8_lossy(&self.input[..self.input.len().min(600)]);
        write!(
            f,
            "input ({} bytes{}):\n{preview}",
            self.input.len(),
            if self.input.len() > 600 {
                ", first 600 shown"
            } else {
                ""
            }
        )
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// The seed.
    pub seed: u64,
    /// Corpus files run as they are.
    pub corpus_inputs: usize,
    /// Generated cases run.
    pub generated: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The slowest input's time.
    pub slowest: Duration,
    /// Inputs over the time bound once but not when run again (a busy machine).
    pub retried: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz target `{}`: {} corpus inputs and {} generated cases in {:.1} s (seed {}; slowest input {} ms",
            self.target,
            self.corpus_inputs,
            self.generated,
            self.elapsed.as_secs_f64(),
            self.seed,
            self.slowest.as_millis()
        )?;
        if self.retried > 0 {
            write!(
                f,
                "; {} over the time bound once, not on a second run",
                self.retried
            )?;
        }
        write!(f, ")")
    }
}

/// The files of `target`'s corpus, in name order.
pub fn corpus_files(corpus_dir: &Path, target: &str) -> Result<Vec<PathBuf>, String> {
    let dir = corpus_dir.join(target);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("the corpus {} is empty", dir.display()));
    }
    Ok(files)
}

/// Runs `target` as `config` says: the failing input, or what was run.
pub fn run(target: &Target, config: &Config) -> Result<Report, Box<Failure>> {
    let started = Instant::now();
    let mut executor = Executor::new(target, config);
    let mut report = Report {
        target: target.name,
        seed: config.seed,
        corpus_inputs: 0,
        generated: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        retried: 0,
    };
    let fail = |case: Case, kind: FailureKind, input: Vec<u8>| {
        let artifact = write_artifact(target, config, &case, &input);
        Box::new(Failure {
            target: target.name,
            seed: config.seed,
            case,
            kind,
            input,
            artifact,
            also: Vec::new(),
        })
    };

    if let Some(path) = &config.replay {
        let input = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(kind) = executor.execute(&input, &mut report) {
            return Err(Box::new(Failure {
                target: target.name,
                seed: config.seed,
                case: Case::Replay(path.clone()),
                kind,
                input,
                artifact: None,
                also: Vec::new(),
            }));
        }
        report.corpus_inputs = 1;
        report.elapsed = started.elapsed();
        return Ok(report);
    }

    let files = corpus_files(&config.corpus_dir, target.name).unwrap_or_else(|e| panic!("{e}"));
    let corpus: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    if config.case.is_none() {
        let mut failing: Option<Box<Failure>> = None;
        for (path, input) in files.iter().zip(&corpus) {
            match executor.execute(input, &mut report) {
                Ok(()) => report.corpus_inputs += 1,
                Err(kind) => match &mut failing {
                    None => failing = Some(fail(Case::Corpus(path.clone()), kind, input.clone())),
                    Some(first) => first.also.push((path.clone(), kind)),
                },
            }
        }
        if let Some(failure) = failing {
            return Err(failure);
        }
    }

    let mutator = Mutator::new(corpus, target.tokens, config.max_len);
    let cases: Box<dyn Iterator<Item = u64>> = match config.case {
        Some(n) => Box::new(std::iter::once(n)),
        None => Box::new(0..),
    };
    let generating = Instant::now();
    for case in cases {
        if config.case.is_none() && generating.elapsed() >= config.duration {
            break;
        }
        let input = mutator.generate(&mut Rng::for_case(config.seed, case));
        if let Err(kind) = executor.execute(&input, &mut report) {
            return Err(fail(Case::Generated(case), kind, input));
        }
        report.generated += 1;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn write_artifact(target: &Target, config: &Config, case: &Case, input: &[u8]) -> Option<PathBuf> {
    let name = match case {
        // Already on disk.
        Case::Corpus(path) => return Some(path.clone()),
        Case::Generated(n) => format!(
            "{}-seed{}-case{n}.{}",
            target.name, config.seed, target.extension
        ),
        Case::Replay(_) => return None,
    };
    std::fs::create_dir_all(&config.artifacts_dir).ok()?;
    let path = config.artifacts_dir.join(name);
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Runs inputs on a worker thread, so that one that never returns can be told from one that
/// does.
struct Executor<'a> {
    target: &'a Target,
    config: &'a Config,
    worker: Option<Worker>,
}

struct Worker {
    inputs: Sender<Vec<u8>>,
    outcomes: Receiver<Result<Duration, String>>,
}

thread_local! {
    /// Set on worker threads: their panics are recorded, not printed.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
    /// The last panic on this worker thread, with its location.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_WORKER.with(Cell::get) {
                let text = info.to_string();
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

impl<'a> Executor<'a> {
    fn new(target: &'a Target, config: &'a Config) -> Executor<'a> {
        install_panic_hook();
        Executor {
            target,
            config,
            worker: None,
        }
    }

    fn spawn(&self) -> Worker {
        let (inputs, inbox) = mpsc::channel::<Vec<u8>>();
        let (outbox, outcomes) = mpsc::channel();
        let run = self.target.run;
        std::thread::Builder::new()
            .name(format!("fuzz-{}", self.target.name))
            .stack_size(self.target.stack_size)
            .spawn(move || {
                IN_WORKER.with(|w| w.set(true));
                for input in inbox {
                    let started = Instant::now();
                    let outcome = catch_unwind(AssertUnwindSafe(|| run(&input)));
                    let outcome = match outcome {
                        Ok(()) => Ok(started.elapsed()),
                        Err(payload) => Err(LAST_PANIC
                            .with(|last| last.borrow_mut().take())
                            .unwrap_or_else(|| panic_message(payload.as_ref()))),
                    };
                    if outbox.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .expect("cannot start a fuzz worker thread");
        Worker { inputs, outcomes }
    }

    /// Runs one input, twice if the first run is over the time bound.
    fn execute(&mut self, input: &[u8], report: &mut Report) -> Result<(), FailureKind> {
        if self.config.save_current {
            let _ = std::fs::create_dir_all(&self.config.artifacts_dir);
            let _ = std::fs::write(
                self.config
                    .artifacts_dir
                    .join(format!("{}-current", self.target.name)),
                input,
            );
        }
        match self.once(input) {
            Ok(elapsed) => {
                report.slowest = report.slowest.max(elapsed);
                Ok(())
            }
            Err(FailureKind::TooSlow(_)) => {
                // Once more on a fresh worker: a busy machine is not a hang.
                let again = self.once(input);
                if again.is_ok() {
                    report.retried += 1;
                }
                again.map(|_| ())
            }
            Err(panic) => Err(panic),
        }
    }

    fn once(&mut self, input: &[u8]) -> Result<Duration, FailureKind> {
        let worker = match self.worker.take() {
            Some(worker) => worker,
            None => self.spawn(),
        };
        worker
            .inputs
            .send(input.to_vec())
            .expect("the fuzz worker thread is gone");
        match worker.outcomes.recv_timeout(self.config.time_limit) {
            Ok(Ok(elapsed)) if elapsed <= self.config.time_limit => {
                self.worker = Some(worker);
                Ok(elapsed)
            }
            Ok(Ok(_)) => {
                self.worker = Some(worker);
                Err(FailureKind::TooSlow(self.config.time_limit))
            }
            Ok(Err(message)) => {
                self.worker = Some(worker);
                Err(FailureKind::Panic(message))
            }
            // The worker is left to finish (or not) on its own; the next input gets a new one.
            Err(RecvTimeoutError::Timeout) => Err(FailureKind::TooSlow(self.config.time_limit)),
            Err(RecvTimeoutError::Disconnected) => Err(FailureKind::Panic(
                "the worker thread died without a panic message".into(),
            )),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs `target` from the environment as a test: prints the seed and what was run, and panics
/// with the failing input, how to replay it and where it was written.
pub fn run_test(target: &Target) {
    let config = Config::from_env(target.name).unwrap_or_else(|e| panic!("{e}"));
    if let Some(path) = &config.replay
        && !path.to_string_lossy().contains(target.name)
    {
        eprintln!(
            "fuzz target `{}`: skipped, {REPLAY_VAR}={} is not one of its inputs (its path does not name the target)",
            target.name,
            path.display()
        );
        return;
    }
    eprintln!(
        "fuzz target `{}`: seed {} (replay with {SEED_VAR}={})",
        target.name, config.seed, config.seed
    );
    match run(target, &config) {
        Ok(report) => eprintln!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            duration: Duration::from_millis(200),
            seed: 5,
            case: None,
            replay: None,
            time_limit: Duration::from_millis(300),
            max_len: 1024,
            save_current: false,
            corpus_dir: dir.join("corpus"),
            artifacts_dir: dir.join("artifacts"),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hoist-fuzz-selftest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("corpus").join(name)).unwrap();
        std::fs::write(dir.join("corpus").join(name).join("seed.txt"), b"key: 1\n").unwrap();
        dir
    }

    fn fine(_: &[u8]) {}

    fn panics_on_nan(data: &[u8]) {
        assert!(
            !String::from_utf8_lossy(data).contains("NaN"),
            "found a NaN"
        );
    }

    fn hangs_on_nan(data: &[u8]) {
        if String::from_utf8_lossy(data).contains("NaN") {
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn target(name: &'static str, run: fn(&[u8])) -> Target {
        Target {
            name,
            extension: "txt",
            run,
            tokens: &["NaN"],
            stack_size: 2 << 20,
        }
    }

    #[test]
    fn a_quiet_target_runs_until_the_time_is_up() {
        let dir = scratch("fine");
        let report = run(&target("fine", fine), &config(&dir)).unwrap();
        assert_eq!(report.corpus_inputs, 1);
        assert!(report.generated > 10, "{report}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_panic_is_found_written_and_replayed_by_its_case() {
        let dir = scratch("panics");
        let t = target("panics", panics_on_nan);
        let mut cfg = config(&dir);
        cfg.duration = Duration::from_secs(10);
        let failure = run(&t, &cfg).unwrap_err();
        assert!(
            matches!(&failure.kind, FailureKind::Panic(m) if m.contains("found a NaN") && m.contains("runner.rs")),
            "{failure}"
        );
        let Case::Generated(n) = failure.case else {
            panic!("{failure}")
        };
        let artifact = failure.artifact.clone().unwrap();
        assert_eq!(std::fs::read(&artifact).unwrap(), failure.input);
        let text = failure.to_string();
        assert!(
            text.contains("HOIST_FUZZ_SEED=5") && text.contains(&format!("HOIST_FUZZ_CASE={n}")),
            "{text}"
        );
        // The same case again, alone.
        cfg.case = Some(n);
        let again = run(&t, &cfg).unwrap_err();
        assert_eq!(again.input, failure.input);
        // And the file.
        cfg.case = None;
        cfg.replay = Some(artifact);
        let again = run(&t, &cfg).unwrap_err();
        assert_eq!(again.kind, failure.kind);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_input_over_the_time_bound_fails() {
        let dir = scratch("hangs");
        let mut cfg = config(&dir);
        cfg.duration = Duration::from_secs(10);
        let failure = run(&target("hangs", hangs_on_nan), &cfg).unwrap_err();
        assert_eq!(
            failure.kind,
            FailureKind::TooSlow(cfg.time_limit),
            "{failure}"
        );
        assert!(String::from_utf8_lossy(&failure.input).contains("NaN"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

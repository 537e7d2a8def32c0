//! Voice prompts: the WAV files in `routing-rules/prompts/`, loaded once (at start and on rules
//! reload), checked, and encoded to µ-law and A-law once. Every call that plays a prompt shares
//! the same `Arc` buffers; playing never copies or re-encodes audio.
//!
//! Only 8000 Hz, mono, 16-bit signed PCM WAV is accepted. Converting (resampling, mixing down)
//! is left to sox at authoring time (`routing-rules/prompts/generate.sh --import`), where a
//! human can listen to the result; a wrong file is refused with an error that says how to
//! convert it.
//!
//! The encoded buffers are padded with codec silence to a whole number of 20 ms frames, so a
//! prompt is a plain slice of `[u8; 160]` frames and the last frame needs no special case.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::media::g711;
use crate::media::pacer::{CLOCK_RATE, FRAME_SAMPLES, Frame};

/// Longer files are refused: a prompt is loaded into memory three times (PCM, µ-law, A-law),
/// and a mistakenly copied hour-long recording should fail validation, not eat memory.
pub const MAX_PROMPT_DURATION: Duration = Duration::from_secs(600);

/// The G.711 variant a call negotiated (RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// PCMU, static payload type 0.
    Ulaw,
    /// PCMA, static payload type 8.
    Alaw,
}

static ULAW_SILENCE: Frame = [0xFF; FRAME_SAMPLES];
static ALAW_SILENCE: Frame = [0xD5; FRAME_SAMPLES];

impl Law {
    /// The static RTP payload type (RFC 3551 table 4).
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The code for a zero sample (µ-law 0xFF, A-law 0xD5).
    pub const fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }

    /// One 20 ms frame of silence, to keep sending between prompts.
    pub fn silence_frame(self) -> &'static Frame {
        match self {
            Law::Ulaw => &ULAW_SILENCE,
            Law::Alaw => &ALAW_SILENCE,
        }
    }

    fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => g711::linear_to_ulaw(sample),
            Law::Alaw => g711::linear_to_alaw(sample),
        }
    }
}

/// One loaded prompt. Cloning is cheap (reference counts only).
#[derive(Clone)]
pub struct Prompt {
    name: Arc<str>,
    pcm: Arc<[i16]>,
    /// Both padded with the law's silence to a multiple of [`FRAME_SAMPLES`].
    ulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("samples", &self.pcm.len())
            .finish_non_exhaustive()
    }
}

impl Prompt {
    /// Encodes `pcm` (8 kHz mono) once for both laws.
    pub fn from_pcm(name: &str, pcm: Vec<i16>) -> Prompt {
        Prompt {
            name: name.into(),
            ulaw: encode_padded(&pcm, Law::Ulaw),
            alaw: encode_padded(&pcm, Law::Alaw),
            pcm: pcm.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The samples as read from the WAV (8 kHz, mono), without padding.
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.pcm.len() as u64 * 1_000_000_000 / u64::from(CLOCK_RATE))
    }

    /// Number of 20 ms frames, the last one counted even if partly padding.
    pub fn frame_count(&self) -> usize {
        self.pcm.len().div_ceil(FRAME_SAMPLES)
    }

    /// The whole prompt in G.711, padded with silence to whole frames.
    pub fn encoded(&self, law: Law) -> &Arc<[u8]> {
        match law {
            Law::Ulaw => &self.ulaw,
            Law::Alaw => &self.alaw,
        }
    }

    /// The prompt as 20 ms frames (160 bytes); the last is padded with the law's silence.
    pub fn frames(&self, law: Law) -> std::slice::Iter<'_, Frame> {
        as_frames(self.encoded(law)).iter()
    }

    /// An owned cursor over the frames, for a call task that plays the prompt across `.await`s
    /// and may stop it at any frame (barge-in: just drop it).
    pub fn playback(&self, law: Law) -> Playback {
        Playback {
            name: Arc::clone(&self.name),
            audio: Arc::clone(self.encoded(law)),
            next: 0,
        }
    }
}

/// Plays one prompt frame by frame; holds only reference counts on the shared audio.
#[derive(Clone)]
pub struct Playback {
    name: Arc<str>,
    audio: Arc<[u8]>,
    next: usize,
}

impl fmt::Debug for Playback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Playback")
            .field("name", &self.name)
            .field("next", &self.next)
            .field("frames", &self.frame_count())
            .finish()
    }
}

impl Playback {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next 20 ms frame, or `None` when the prompt has ended.
    pub fn next_frame(&mut self) -> Option<&Frame> {
        let frame = as_frames(&self.audio).get(self.next)?;
        self.next += 1;
        Some(frame)
    }

    pub fn frames_played(&self) -> usize {
        self.next
    }

    pub fn frames_left(&self) -> usize {
        self.frame_count() - self.next
    }

    pub fn is_finished(&self) -> bool {
        self.frames_left() == 0
    }

    fn frame_count(&self) -> usize {
        self.audio.len() / FRAME_SAMPLES
    }
}

fn encode_padded(pcm: &[i16], law: Law) -> Arc<[u8]> {
    let mut encoded: Vec<u8> = pcm.iter().map(|&s| law.encode(s)).collect();
    encoded.resize(
        pcm.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES,
        law.silence(),
    );
    encoded.into()
}

fn as_frames(audio: &[u8]) -> &[Frame] {
    let (frames, rest) = audio.as_chunks::<FRAME_SAMPLES>();
    debug_assert!(
        rest.is_empty(),
        "encoded prompts are padded to whole frames"
    );
    frames
}

/// Every prompt of one rule set, by name (the file name without `.wav`).
#[derive(Debug, Clone, Default)]
pub struct PromptLibrary {
    dir: PathBuf,
    prompts: BTreeMap<String, Prompt>,
}

impl PromptLibrary {
    /// Loads exactly the named prompts (`<dir>/<name>.wav`), e.g. every prompt the rules refer
    /// to. Reports every missing or bad file, not just the first.
    pub fn load<I>(dir: &Path, names: I) -> Result<PromptLibrary, PromptLoadError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut library = PromptLibrary {
            dir: dir.to_path_buf(),
            prompts: BTreeMap::new(),
        };
        let mut errors = Vec::new();
        for name in names {
            let name = name.as_ref();
            if library.prompts.contains_key(name) {
                continue;
            }
            match load_prompt(dir, name) {
                Ok(prompt) => {
                    library.prompts.insert(name.to_owned(), prompt);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(library)
        } else {
            Err(PromptLoadError { errors })
        }
    }

    /// Loads every `*.wav` in `dir` (other files, such as `generate.sh`, are ignored).
    pub fn load_all(dir: &Path) -> Result<PromptLibrary, PromptLoadError> {
        let directory_error = |source| PromptLoadError {
            errors: vec![PromptError::Directory {
                dir: dir.to_path_buf(),
                source,
            }],
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(directory_error)? {
            let path = entry.map_err(directory_error)?.path();
            if path.extension().is_some_and(|e| e == "wav")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                names.push(stem.to_owned());
            }
        }
        Self::load(dir, names)
    }

    /// The directory the prompts were loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    /// Prompt names in alphabetical order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

fn load_prompt(dir: &Path, name: &str) -> Result<Prompt, PromptError> {
    // Names come from admin-edited rules: keep them to plain file names inside `dir`.
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(PromptError::InvalidName {
            name: name.to_owned(),
        });
    }
    let path = dir.join(format!("{name}.wav"));
    let unreadable = |source: hound::Error| match source {
        hound::Error::IoError(e) if e.kind() == io::ErrorKind::NotFound => PromptError::Missing {
            name: name.to_owned(),
            path: path.clone(),
        },
        source => PromptError::Unreadable {
            name: name.to_owned(),
            path: path.clone(),
            source,
        },
    };
    let reader = hound::WavReader::open(&path).map_err(unreadable)?;
    let spec = reader.spec();
    if spec.sample_rate != CLOCK_RATE
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(PromptError::WrongFormat {
            name: name.to_owned(),
            path: path.clone(),
            found: describe_spec(spec),
        });
    }
    let duration = Duration::from_secs_f64(f64::from(reader.duration()) / f64::from(CLOCK_RATE));
    if duration > MAX_PROMPT_DURATION {
        return Err(PromptError::TooLong {
            name: name.to_owned(),
            path: path.clone(),
            duration,
        });
    }
    let pcm = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(unreadable)?;
    if pcm.is_empty() {
        return Err(PromptError::Empty {
            name: name.to_owned(),
            path: path.clone(),
        });
    }
    Ok(Prompt::from_pcm(name, pcm))
}

fn describe_spec(spec: hound::WavSpec) -> String {
    let channels = match spec.channels {
        1 => "mono".to_owned(),
        2 => "stereo".to_owned(),
        n => format!("{n} channels"),
    };
    let format = match spec.sample_format {
        hound::SampleFormat::Int => "PCM",
        hound::SampleFormat::Float => "float",
    };
    format!(
        "{} Hz, {channels}, {}-bit {format}",
        spec.sample_rate, spec.bits_per_sample
    )
}

/// Why one prompt could not be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt directory {}: {source}", dir.display())]
    Directory { dir: PathBuf, source: io::Error },
    #[error(
        "prompt name {name:?} is not allowed: use letters, digits, '_' and '-' (the file is <name>.wav)"
    )]
    InvalidName { name: String },
    #[error("prompt {name:?}: file {} is missing", path.display())]
    Missing { name: String, path: PathBuf },
    #[error("prompt {name:?}: cannot read {} as a WAV file: {source}", path.display())]
    Unreadable {
        name: String,
        path: PathBuf,
        source: hound::Error,
    },
    #[error(
        "prompt {name:?}: {} is {found}, but prompts must be 8000 Hz, mono, 16-bit signed PCM \
         WAV; convert it in the prompts folder with `./generate.sh --import {name}.wav {name}` \
         (or `sox -D in.wav -r 8000 -c 1 -b 16 -e signed-integer {name}.wav`)",
        path.display()
    )]
    WrongFormat {
        name: String,
        path: PathBuf,
        found: String,
    },
    #[error("prompt {name:?}: {} contains no audio", path.display())]
    Empty { name: String, path: PathBuf },
    #[error(
        "prompt {name:?}: {} is {:.0} s long; the limit is {} s",
        path.display(), duration.as_secs_f64(), MAX_PROMPT_DURATION.as_secs()
    )]
    TooLong {
        name: String,
        path: PathBuf,
        duration: Duration,
    },
}

/// Every prompt that failed to load, so an admin sees all problems at once.
#[derive(Debug)]
pub struct PromptLoadError {
    pub errors: Vec<PromptError>,
}

impl fmt::Display for PromptLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} prompts could not be loaded:", all.len())?;
                for e in all {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PromptLoadError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("routing-rules/prompts")
    }

    /// Every prompt `generate.sh` makes (speech and the music on hold).
    fn shipped_names() -> Vec<String> {
        let texts = std::fs::read_to_string(shipped_dir().join("texts.tsv")).unwrap();
        texts
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect()
    }

    fn rms(pcm: &[i16]) -> f64 {
        let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / pcm.len() as f64).sqrt()
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "zentrale-prompts-{tag}-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn wav(&self, name: &str, rate: u32, channels: u16, bits: u16, samples: usize) {
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(self.0.join(format!("{name}.wav")), spec).unwrap();
            for i in 0..samples * usize::from(channels) {
                let s = ((i as f64 * 0.3).sin() * 8000.0) as i32;
                match bits {
                    8 => w.write_sample((s >> 8) as i8).unwrap(),
                    _ => w.write_sample(s as i16).unwrap(),
                }
            }
            w.finalize().unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn only_error(result: Result<PromptLibrary, PromptLoadError>) -> PromptError {
        let mut errors = result.expect_err("load must fail").errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn shipped_prompts_all_load_with_sound() {
        let names = shipped_names();
        for required in [
            "greeting",
            "menu",
            "invalid",
            "no_input",
            "transfer_general",
            "closed_hotline",
            "closed_fundbuero",
            "holiday",
            "queue_entry",
            "position_prefix",
            "num_1",
            "num_20",
            "position_suffix",
            "queue_full",
            "queue_wait_long",
            "goodbye",
            "music_on_hold",
        ] {
            assert!(names.iter().any(|n| n == required), "{required} not listed");
        }
        let library = PromptLibrary::load(&shipped_dir(), &names).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(library.len(), names.len());
        for name in &names {
            let prompt = library.get(name).unwrap();
            let min = if name.starts_with("num_") {
                Duration::from_millis(300)
            } else {
                Duration::from_millis(1000)
            };
            assert!(prompt.duration() >= min, "{name}: {:?}", prompt.duration());
            assert!(prompt.duration() <= Duration::from_secs(30), "{name}");
            assert!(rms(prompt.pcm()) > 300.0, "{name} is (nearly) silent");
            assert_eq!(prompt.frames(Law::Ulaw).len(), prompt.frame_count());
            assert_eq!(prompt.frames(Law::Alaw).len(), prompt.frame_count());
        }
        let moh = library.get("music_on_hold").unwrap().duration();
        assert!((20..=30).contains(&moh.as_secs()), "music on hold {moh:?}");
        let menu = library.get("menu").unwrap().duration();
        assert!(
            menu > Duration::from_secs(8),
            "menu names five options: {menu:?}"
        );
    }

    #[test]
    fn load_all_finds_every_wav_and_nothing_else() {
        let library = PromptLibrary::load_all(&shipped_dir()).unwrap();
        let mut expected = shipped_names();
        expected.sort();
        assert_eq!(library.names().collect::<Vec<_>>(), expected);
        assert!(!library.contains("generate"));
        assert!(!library.contains("README"));
    }

    #[test]
    fn shipped_prompts_stay_small() {
        let total: u64 = std::fs::read_dir(shipped_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .map(|p| p.metadata().unwrap().len())
            .sum();
        assert!(total < 3 * 1024 * 1024, "{total} bytes of prompts");
    }

    #[test]
    fn frames_are_160_bytes_and_the_last_is_padded_with_silence() {
        // 2.5 frames of a loud constant: the padding is recognisably different
        let prompt = Prompt::from_pcm("t", vec![1000; 400]);
        assert_eq!(prompt.frame_count(), 3);
        assert_eq!(prompt.duration(), Duration::from_millis(50));
        for (law, silence) in [(Law::Ulaw, 0xFF), (Law::Alaw, 0xD5)] {
            let frames: Vec<&Frame> = prompt.frames(law).collect();
            assert_eq!(frames.len(), 3);
            let code = law.encode(1000);
            assert_ne!(code, silence);
            assert!(frames[0].iter().chain(frames[1].iter()).all(|&b| b == code));
            assert!(frames[2][..80].iter().all(|&b| b == code));
            assert!(frames[2][80..].iter().all(|&b| b == silence), "{law:?}");
            assert_eq!(law.encode(0), silence);
            assert!(law.silence_frame().iter().all(|&b| b == silence));
        }
        // exactly whole frames: no extra padding frame
        assert_eq!(Prompt::from_pcm("t", vec![0; 320]).frame_count(), 2);
        assert_eq!(
            Prompt::from_pcm("t", vec![0; 320]).frames(Law::Ulaw).len(),
            2
        );
    }

    #[test]
    fn each_law_gets_its_own_encoding() {
        let pcm: Vec<i16> = (0..800)
            .map(|i| ((f64::from(i) * 0.2).sin() * 12_000.0) as i16)
            .collect();
        let prompt = Prompt::from_pcm("t", pcm.clone());
        let decode = |law, code| match law {
            Law::Ulaw => g711::ulaw_to_linear(code),
            Law::Alaw => g711::alaw_to_linear(code),
        };
        for law in [Law::Ulaw, Law::Alaw] {
            let encoded = prompt.encoded(law);
            assert_eq!(encoded.len(), 800);
            for (&code, &sample) in encoded.iter().zip(&pcm) {
                let error = (i32::from(decode(law, code)) - i32::from(sample)).abs();
                // G.711 keeps ~4 mantissa bits: the error stays under 1/16 of the sample + a step
                assert!(
                    error <= i32::from(sample).abs() / 16 + 16,
                    "{law:?} {sample}"
                );
            }
        }
    }

    #[test]
    fn playbacks_share_the_encoded_audio() {
        let library = PromptLibrary::load(&shipped_dir(), ["greeting"]).unwrap();
        let greeting = library.get("greeting").unwrap();
        let mut a = greeting.playback(Law::Alaw);
        let b = greeting.playback(Law::Alaw);
        assert!(Arc::ptr_eq(&a.audio, &b.audio));
        assert!(Arc::ptr_eq(&a.audio, greeting.encoded(Law::Alaw)));
        assert_eq!(Arc::strong_count(greeting.encoded(Law::Alaw)), 3);

        let mut played = 0;
        let mut frames = greeting.frames(Law::Alaw);
        while let Some(frame) = a.next_frame() {
            assert_eq!(frame, frames.next().unwrap());
            played += 1;
        }
        assert_eq!(played, greeting.frame_count());
        assert!(a.is_finished());
        assert_eq!(a.frames_played(), played);
        assert!(a.next_frame().is_none());
        assert_eq!(b.frames_left(), played);
    }

    #[test]
    fn missing_prompt_names_the_file() {
        let dir = TempDir::new("missing");
        dir.wav("greeting", 8000, 1, 16, 800);
        let error = only_error(PromptLibrary::load(&dir.0, ["greeting", "menu"]));
        let expected_path = dir.0.join("menu.wav");
        assert!(matches!(&error, PromptError::Missing { path, .. } if *path == expected_path));
        let message = error.to_string();
        assert!(
            message.contains(&*expected_path.to_string_lossy()),
            "{message}"
        );
        assert!(message.contains("missing"), "{message}");
    }

    #[test]
    fn every_bad_prompt_is_reported_at_once() {
        let dir = TempDir::new("many");
        dir.wav("stereo", 8000, 2, 16, 800);
        let error = PromptLibrary::load(&dir.0, ["a", "stereo", "b"]).unwrap_err();
        assert_eq!(error.errors.len(), 3);
        let message = error.to_string();
        assert!(
            message.starts_with("3 prompts could not be loaded:"),
            "{message}"
        );
        assert!(
            message.contains("a.wav") && message.contains("b.wav"),
            "{message}"
        );
    }

    #[test]
    fn stereo_is_refused_with_how_to_convert() {
        let dir = TempDir::new("stereo");
        dir.wav("greeting", 8000, 2, 16, 800);
        let message = only_error(PromptLibrary::load(&dir.0, ["greeting"])).to_string();
        assert!(message.contains("greeting.wav"), "{message}");
        assert!(message.contains("8000 Hz, stereo, 16-bit PCM"), "{message}");
        assert!(message.contains("sox -D"), "{message}");
        assert!(message.contains("generate.sh --import"), "{message}");
    }

    #[test]
    fn sixteen_khz_is_refused() {
        let dir = TempDir::new("16k");
        dir.wav("menu", 16000, 1, 16, 1600);
        let error = only_error(PromptLibrary::load(&dir.0, ["menu"]));
        assert!(
            matches!(&error, PromptError::WrongFormat { found, .. } if found == "16000 Hz, mono, 16-bit PCM"),
            "{error}"
        );
    }

    #[test]
    fn eight_bit_is_refused() {
        let dir = TempDir::new("8bit");
        dir.wav("menu", 8000, 1, 8, 800);
        let error = only_error(PromptLibrary::load(&dir.0, ["menu"]));
        assert!(
            matches!(&error, PromptError::WrongFormat { found, .. } if found == "8000 Hz, mono, 8-bit PCM"),
            "{error}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_wav_is_unreadable() {
        let dir = TempDir::new("notwav");
        std::fs::write(
            dir.0.join("greeting.wav"),
            b"ID3\x03 this is an mp3, honestly",
        )
        .unwrap();
        let error = only_error(PromptLibrary::load(&dir.0, ["greeting"]));
        assert!(matches!(error, PromptError::Unreadable { .. }), "{error}");
        assert!(error.to_string().contains("greeting.wav"), "{error}");
    }

    #[test]
    fn a_truncated_wav_is_unreadable() {
        let dir = TempDir::new("truncated");
        dir.wav("greeting", 8000, 1, 16, 800);
        let path = dir.0.join("greeting.wav");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 101]).unwrap();
        let error = only_error(PromptLibrary::load(&dir.0, ["greeting"]));
        assert!(matches!(error, PromptError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn an_empty_wav_is_refused() {
        let dir = TempDir::new("empty");
        dir.wav("greeting", 8000, 1, 16, 0);
        let error = only_error(PromptLibrary::load(&dir.0, ["greeting"]));
        assert!(matches!(error, PromptError::Empty { .. }), "{error}");
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let dir = TempDir::new("names");
        for name in ["../etc/passwd", "a/b", "", "greeting.wav"] {
            let error = only_error(PromptLibrary::load(&dir.0, [name]));
            assert!(
                matches!(error, PromptError::InvalidName { .. }),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = TempDir::new("gone");
        let gone = dir.0.join("nowhere");
        let error = only_error(PromptLibrary::load_all(&gone));
        assert!(matches!(error, PromptError::Directory { .. }), "{error}");
        assert!(error.to_string().contains("nowhere"), "{error}");
    }
}

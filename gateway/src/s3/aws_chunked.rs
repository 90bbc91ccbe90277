//! Streaming decoder for `aws-chunked` request bodies (`Content-Encoding: aws-chunked`).
//!
//! Every variant S3 clients send is understood:
//!
//! - `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: `hex-size CRLF data CRLF` chunks, a final `0 CRLF`,
//!   trailer lines (`x-amz-checksum-crc32:...`) and an empty line.
//! - `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk header carries
//!   `;chunk-signature=<64 hex>`, an HMAC chained from the request's seed signature over the
//!   SHA-256 of the chunk's data; the final zero-size chunk is signed too.
//! - `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: the above, then trailer lines closed by
//!   `x-amz-trailer-signature:<64 hex>`, an HMAC chained from the final chunk's signature over
//!   the SHA-256 of the canonical trailer (`name:value\n` per header, sorted by name).
//!
//! The decoder never holds more than one header or trailer line (bounded by
//! [`MAX_CHUNK_HEADER_BYTES`] and [`MAX_TRAILER_BYTES`]) besides the unread rest of the current
//! input frame: payload bytes leave as slices of the input frames, without copies.
//!
//! A signed chunk's bytes are passed on as they arrive, while its SHA-256 is computed; the
//! chunk's signature is checked before the chunk's *last* byte is passed on. A consumer may
//! therefore have seen up to one chunk of unverified bytes when an error arrives, and a bad
//! signature on the final chunk or the trailer surfaces only at the end of the stream: the body
//! is valid only if the stream ended (`None`) without an error item, and callers make nothing
//! visible before that.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use futures_util::stream::FusedStream;
use sha2::{Digest, Sha256};

use crate::auth::{PayloadHash, chunk_string_to_sign, constant_time_eq, sign_hex, trailer_string_to_sign};

/// Longest chunk header line (`hex-size;chunk-signature=...` with its CRLF) accepted.
pub const MAX_CHUNK_HEADER_BYTES: usize = 4096;
/// Largest single chunk accepted; S3 clients send 64 KiB to 8 MiB.
pub const MAX_CHUNK_BYTES: u64 = 64 * 1024 * 1024;
/// Largest trailer section (every trailer line with its CRLF) accepted.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Largest decoded body accepted (the S3 object size limit, 5 TiB).
pub const MAX_DECODED_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// Trailer line that carries the trailer's signature; never part of [`Trailer::headers`].
const TRAILER_SIGNATURE_HEADER: &str = "x-amz-trailer-signature";
/// The only chunk extension S3 defines.
const CHUNK_SIGNATURE_EXTENSION: &[u8] = b";chunk-signature=";
/// Length of a SigV4 signature in hex.
const SIGNATURE_HEX_BYTES: usize = 64;

/// Error of the underlying body stream, kept as the source of [`ChunkedError::Body`].
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// How the chunks of a body are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum ChunkedMode {
    /// Chunks carry no signature (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
    Unsigned,
    /// Every chunk is signed, chained from the request's seed signature.
    Signed {
        /// The request's own signature (lowercase hex): the previous signature of chunk one.
        seed_signature: String,
        /// The derived SigV4 signing key of the request's scope.
        signing_key: [u8; 32],
        /// The credential scope, `YYYYMMDD/region/s3/aws4_request`.
        scope: String,
        /// The request's signing time, `YYYYMMDDTHHMMSSZ`.
        timestamp: String,
    },
}

impl fmt::Debug for ChunkedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => f.write_str("Unsigned"),
            // The signing key is a credential: it never reaches a log.
            Self::Signed { seed_signature, scope, timestamp, .. } => f
                .debug_struct("Signed")
                .field("seed_signature", seed_signature)
                .field("signing_key", &"<redacted>")
                .field("scope", scope)
                .field("timestamp", timestamp)
                .finish(),
        }
    }
}

/// The trailer headers of a decoded body, without `x-amz-trailer-signature`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trailer {
    /// Lower-cased names and trimmed values, in the order they were sent.
    pub headers: Vec<(String, String)>,
}

impl Trailer {
    /// The value of the trailer header `name` (compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why an `aws-chunked` body was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedError {
    /// The body does not follow the `aws-chunked` grammar.
    #[error("malformed aws-chunked body: {0}")]
    Malformed(&'static str),
    /// A chunk or trailer signature is not the one the signing key produces.
    #[error("a chunk or trailer signature does not match")]
    SignatureDoesNotMatch,
    /// A chunk announces more than [`MAX_CHUNK_BYTES`].
    #[error("a chunk exceeds {MAX_CHUNK_BYTES} bytes")]
    ChunkTooLarge,
    /// The trailer section exceeds [`MAX_TRAILER_BYTES`].
    #[error("the trailer exceeds {MAX_TRAILER_BYTES} bytes")]
    TrailerTooLarge,
    /// The decoded body would exceed [`MAX_DECODED_BYTES`].
    #[error("the decoded body exceeds {MAX_DECODED_BYTES} bytes")]
    TooLarge,
    /// The chunks announce a length other than `x-amz-decoded-content-length`; `decoded` is
    /// the total announced when the difference was noticed.
    #[error("x-amz-decoded-content-length is {declared} but the chunks announce {decoded} bytes")]
    LengthMismatch {
        /// The declared decoded length.
        declared: u64,
        /// The decoded length announced by the chunks so far.
        decoded: u64,
    },
    /// The body ended before its final chunk or inside the trailer.
    #[error("the body ended before the end of its aws-chunked encoding")]
    Incomplete,
    /// Reading the underlying body failed.
    #[error("reading the request body failed: {0}")]
    Body(#[source] BodyError),
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk header line.
    ChunkHeader,
    /// Passing on chunk data; `remaining` bytes of the chunk are still to come.
    ChunkData { remaining: u64 },
    /// Expecting the CRLF after chunk data; `matched` bytes of it were seen.
    ChunkEnd { matched: usize },
    /// Reading trailer lines after the final chunk.
    Trailer,
    /// The encoding ended; only the end of the input may follow.
    Complete,
    /// The stream ended or failed; it yields nothing more.
    Finished,
}

/// Running state of signature verification.
struct Signing {
    key: [u8; 32],
    scope: String,
    timestamp: String,
    /// Signature of the previous chunk (the seed signature before chunk one).
    previous: String,
    /// SHA-256 of the current chunk's data so far.
    chunk_sha256: Sha256,
    /// Signature the current chunk header claims.
    claimed: [u8; SIGNATURE_HEX_BYTES],
}

impl Signing {
    /// Checks the claimed signature of the chunk that just ended and moves the chain on.
    fn verify_chunk(&mut self) -> Result<(), ChunkedError> {
        let digest: [u8; 32] = std::mem::take(&mut self.chunk_sha256).finalize().into();
        let string_to_sign = chunk_string_to_sign(&self.timestamp, &self.scope, &self.previous, &digest);
        self.chain(&string_to_sign, self.claimed)
    }

    /// Checks a trailer signature over the trailer headers as the client canonicalised them.
    fn verify_trailer(&mut self, trailer: &Trailer, claimed: [u8; SIGNATURE_HEX_BYTES]) -> Result<(), ChunkedError> {
        let mut sorted: Vec<&(String, String)> = trailer.headers.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        for (name, value) in sorted {
            hasher.update(name.as_bytes());
            hasher.update(b":");
            hasher.update(value.as_bytes());
            hasher.update(b"\n");
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let string_to_sign = trailer_string_to_sign(&self.timestamp, &self.scope, &self.previous, &digest);
        self.chain(&string_to_sign, claimed)
    }

    fn chain(&mut self, string_to_sign: &str, claimed: [u8; SIGNATURE_HEX_BYTES]) -> Result<(), ChunkedError> {
        let expected = sign_hex(&self.key, string_to_sign);
        if !constant_time_eq(expected.as_bytes(), &claimed) {
            return Err(ChunkedError::SignatureDoesNotMatch);
        }
        self.previous = expected;
        Ok(())
    }
}

/// What one decoding step produced.
enum Step {
    /// Payload bytes to pass on.
    Data(Bytes),
    /// The current input frame is used up.
    NeedInput,
}

/// Wraps a body stream and yields the decoded payload bytes; the trailer is available once
/// the stream ended without an error.
pub struct AwsChunkedDecoder<S> {
    inner: S,
    /// Unread rest of the current input frame.
    frame: Bytes,
    /// A header or trailer line split across input frames.
    line: Vec<u8>,
    state: State,
    signing: Option<Signing>,
    expect_trailer: bool,
    declared_length: Option<u64>,
    /// Payload bytes announced by the chunk headers read so far.
    announced: u64,
    trailer: Trailer,
    /// Bytes of trailer lines read so far, CRLFs included.
    trailer_bytes: usize,
    /// Whether the trailer lines so far include a verified `x-amz-trailer-signature`.
    trailer_signed: bool,
    /// Whether the empty line some writers put between the final chunk and a signed trailer
    /// was skipped.
    blank_line_skipped: bool,
    /// Whether the body was decoded to its end without an error.
    completed: bool,
}

impl<S> fmt::Debug for AwsChunkedDecoder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsChunkedDecoder")
            .field("state", &self.state)
            .field("signed", &self.signing.is_some())
            .field("expect_trailer", &self.expect_trailer)
            .field("declared_length", &self.declared_length)
            .field("announced", &self.announced)
            .finish_non_exhaustive()
    }
}

impl<S> AwsChunkedDecoder<S> {
    /// Decodes `inner` in `mode`; `expect_trailer` says whether trailer headers follow the
    /// final chunk (the `-TRAILER` payload modes), `decoded_length` is the value of
    /// `x-amz-decoded-content-length` when the request had one.
    pub fn new(inner: S, mode: ChunkedMode, expect_trailer: bool, decoded_length: Option<u64>) -> Self {
        let signing = match mode {
            ChunkedMode::Unsigned => None,
            ChunkedMode::Signed { seed_signature, signing_key, scope, timestamp } => Some(Signing {
                key: signing_key,
                scope,
                timestamp,
                previous: seed_signature,
                chunk_sha256: Sha256::new(),
                claimed: [0; SIGNATURE_HEX_BYTES],
            }),
        };
        Self {
            inner,
            frame: Bytes::new(),
            line: Vec::new(),
            state: State::ChunkHeader,
            signing,
            expect_trailer,
            declared_length: decoded_length,
            announced: 0,
            trailer: Trailer::default(),
            trailer_bytes: 0,
            trailer_signed: false,
            blank_line_skipped: false,
            completed: false,
        }
    }

    /// The decoder a verified request's payload promise calls for; `None` when the signature
    /// says the body is not `aws-chunked` (a plain SHA-256 or `UNSIGNED-PAYLOAD`).
    pub fn for_payload(inner: S, payload: &PayloadHash, decoded_length: Option<u64>) -> Option<Self> {
        match payload {
            PayloadHash::StreamingSigned { seed_signature, signing_key, scope, timestamp, trailer } => {
                let mode = ChunkedMode::Signed {
                    seed_signature: seed_signature.clone(),
                    signing_key: *signing_key,
                    scope: scope.clone(),
                    timestamp: timestamp.clone(),
                };
                Some(Self::new(inner, mode, *trailer, decoded_length))
            }
            PayloadHash::StreamingUnsignedTrailer => {
                Some(Self::new(inner, ChunkedMode::Unsigned, true, decoded_length))
            }
            PayloadHash::Sha256(_) | PayloadHash::Unsigned => None,
        }
    }

    /// The trailer, once the whole body was decoded without an error (empty headers when the
    /// body had no trailer); `None` before that or after an error.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.completed.then_some(&self.trailer)
    }

    /// Payload bytes announced by the chunk headers read so far.
    pub fn decoded_bytes(&self) -> u64 {
        self.announced
    }

    /// Decodes from the current input frame until it yields payload bytes or is used up.
    fn step(&mut self) -> Result<Step, ChunkedError> {
        while !self.frame.is_empty() {
            match self.state {
                State::ChunkHeader => {
                    let too_long = ChunkedError::Malformed("chunk header line too long");
                    if self.fill_line(MAX_CHUNK_HEADER_BYTES, too_long)? {
                        let line = std::mem::take(&mut self.line);
                        let result = strip_crlf(&line).and_then(|header| self.on_chunk_header(header));
                        self.line = line;
                        self.line.clear();
                        result?;
                    }
                }
                State::ChunkData { remaining } => {
                    let take = usize::try_from(remaining).map_or(self.frame.len(), |r| r.min(self.frame.len()));
                    let data = self.frame.split_to(take);
                    let remaining = remaining - take as u64;
                    if let Some(signing) = &mut self.signing {
                        signing.chunk_sha256.update(&data);
                        if remaining == 0 {
                            signing.verify_chunk()?;
                        }
                    }
                    self.state =
                        if remaining == 0 { State::ChunkEnd { matched: 0 } } else { State::ChunkData { remaining } };
                    return Ok(Step::Data(data));
                }
                State::ChunkEnd { matched } => {
                    if self.frame[0] != b"\r\n"[matched] {
                        return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.frame.advance(1);
                    self.state = if matched == 0 { State::ChunkEnd { matched: 1 } } else { State::ChunkHeader };
                }
                State::Trailer => {
                    let limit = MAX_TRAILER_BYTES.saturating_sub(self.trailer_bytes);
                    if self.fill_line(limit, ChunkedError::TrailerTooLarge)? {
                        let line = std::mem::take(&mut self.line);
                        self.trailer_bytes += line.len();
                        let result = strip_crlf(&line).and_then(|text| self.on_trailer_line(text));
                        self.line = line;
                        self.line.clear();
                        result?;
                    }
                }
                State::Complete | State::Finished => {
                    return Err(ChunkedError::Malformed("bytes after the end of the aws-chunked encoding"));
                }
            }
        }
        Ok(Step::NeedInput)
    }

    /// Moves bytes of the current frame into `line` up to and including a LF, failing with
    /// `too_long` rather than letting the line grow past `limit` bytes; `Ok(true)` once `line`
    /// holds a whole line.
    fn fill_line(&mut self, limit: usize, too_long: ChunkedError) -> Result<bool, ChunkedError> {
        let room = limit.saturating_sub(self.line.len());
        let window = &self.frame[..self.frame.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.line.extend_from_slice(&self.frame[..=end]);
                self.frame.advance(end + 1);
                Ok(true)
            }
            None if self.frame.len() >= room => Err(too_long),
            None => {
                self.line.extend_from_slice(&self.frame);
                self.frame.clear();
                Ok(false)
            }
        }
    }

    fn on_chunk_header(&mut self, header: &[u8]) -> Result<(), ChunkedError> {
        let (size, extension) = match header.iter().position(|&b| b == b';') {
            Some(at) => (&header[..at], Some(&header[at..])),
            None => (header, None),
        };
        let size = parse_chunk_size(size)?;
        match (&mut self.signing, extension) {
            (None, None) => {}
            (None, Some(_)) => return Err(ChunkedError::Malformed("chunk extension in an unsigned body")),
            (Some(_), None) => return Err(ChunkedError::Malformed("chunk signature missing")),
            (Some(signing), Some(extension)) => {
                let signature = extension
                    .strip_prefix(CHUNK_SIGNATURE_EXTENSION)
                    .ok_or(ChunkedError::Malformed("unknown chunk extension"))?;
                signing.claimed = parse_signature(signature)?;
            }
        }
        let announced =
            self.announced.checked_add(size).filter(|&n| n <= MAX_DECODED_BYTES).ok_or(ChunkedError::TooLarge)?;
        if let Some(declared) = self.declared_length
            && announced > declared
        {
            return Err(ChunkedError::LengthMismatch { declared, decoded: announced });
        }
        self.announced = announced;
        if size > 0 {
            self.state = State::ChunkData { remaining: size };
            return Ok(());
        }
        // The final chunk: it has no data, but its (empty) data is signed all the same.
        if let Some(signing) = &mut self.signing {
            signing.verify_chunk()?;
        }
        if let Some(declared) = self.declared_length
            && announced != declared
        {
            return Err(ChunkedError::LengthMismatch { declared, decoded: announced });
        }
        self.state = State::Trailer;
        Ok(())
    }

    fn on_trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let signed_trailer = self.expect_trailer && self.signing.is_some();
        if line.is_empty() {
            // Some writers (the AWS documentation's example among them) put an empty line
            // between the final chunk and a signed trailer; a signed trailer is never empty,
            // so skipping that one line is unambiguous.
            if signed_trailer && !self.blank_line_skipped && self.trailer.headers.is_empty() && !self.trailer_signed {
                self.blank_line_skipped = true;
                return Ok(());
            }
            return self.finish_trailer();
        }
        if !self.expect_trailer {
            return Err(ChunkedError::Malformed("trailer in a body that announced none"));
        }
        if self.trailer_signed {
            return Err(ChunkedError::Malformed("trailer header after the trailer signature"));
        }
        let (name, value) = parse_trailer_line(line)?;
        if name == TRAILER_SIGNATURE_HEADER {
            let Some(signing) = &mut self.signing else {
                return Err(ChunkedError::Malformed("trailer signature in an unsigned body"));
            };
            let claimed = parse_signature(value.as_bytes())?;
            signing.verify_trailer(&self.trailer, claimed)?;
            self.trailer_signed = true;
            return Ok(());
        }
        if self.trailer.get(&name).is_some() {
            return Err(ChunkedError::Malformed("repeated trailer header"));
        }
        self.trailer.headers.push((name, value));
        Ok(())
    }

    /// Ends the trailer section, checking that what was promised came.
    fn finish_trailer(&mut self) -> Result<(), ChunkedError> {
        if self.expect_trailer {
            if self.trailer.headers.is_empty() {
                return Err(ChunkedError::Malformed("trailer missing"));
            }
            if self.signing.is_some() && !self.trailer_signed {
                return Err(ChunkedError::Malformed("trailer signature missing"));
            }
        }
        self.state = State::Complete;
        Ok(())
    }

    /// The input ended: fine after the encoding's end, and after the final chunk when only the
    /// closing empty line is missing.
    fn on_end_of_input(&mut self) -> Result<(), ChunkedError> {
        match self.state {
            State::Complete => Ok(()),
            State::Trailer if self.line.is_empty() => {
                let trailer_seen = !self.trailer.headers.is_empty() || self.trailer_signed;
                if self.expect_trailer && !trailer_seen {
                    return Err(ChunkedError::Incomplete);
                }
                self.finish_trailer()
            }
            _ => Err(ChunkedError::Incomplete),
        }
    }
}

/// Parses a chunk size: hex digits only, at most [`MAX_CHUNK_BYTES`].
fn parse_chunk_size(text: &[u8]) -> Result<u64, ChunkedError> {
    if text.is_empty() {
        return Err(ChunkedError::Malformed("chunk size missing"));
    }
    let mut size: u64 = 0;
    for &digit in text {
        let value = char::from(digit).to_digit(16).ok_or(ChunkedError::Malformed("chunk size is not hexadecimal"))?;
        // The size is checked before each shift, so it never overflows.
        size = size * 16 + u64::from(value);
        if size > MAX_CHUNK_BYTES {
            return Err(ChunkedError::ChunkTooLarge);
        }
    }
    Ok(size)
}

/// Parses a claimed signature: exactly 64 hex digits.
fn parse_signature(text: &[u8]) -> Result<[u8; SIGNATURE_HEX_BYTES], ChunkedError> {
    let signature: [u8; SIGNATURE_HEX_BYTES] =
        text.try_into().map_err(|_| ChunkedError::Malformed("signature is not 64 hex digits"))?;
    if !signature.iter().all(u8::is_ascii_hexdigit) {
        return Err(ChunkedError::Malformed("signature is not 64 hex digits"));
    }
    Ok(signature)
}

/// Removes the CRLF that ends every header and trailer line.
fn strip_crlf(line: &[u8]) -> Result<&[u8], ChunkedError> {
    line.strip_suffix(b"\r\n").ok_or(ChunkedError::Malformed("line not ended by CRLF"))
}

/// Splits `name:value` into a lower-cased header name and a trimmed value.
fn parse_trailer_line(line: &[u8]) -> Result<(String, String), ChunkedError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(ChunkedError::Malformed("trailer line without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(ChunkedError::Malformed("invalid trailer header name"));
    }
    if !value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(ChunkedError::Malformed("invalid trailer header value"));
    }
    // Both parts are ASCII, checked above.
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let value = String::from_utf8_lossy(value.trim_ascii()).into_owned();
    Ok((name, value))
}

/// Whether `b` may appear in an HTTP header name (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<S, E> Stream for AwsChunkedDecoder<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BodyError>,
{
    type Item = Result<Bytes, ChunkedError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.state == State::Finished {
                return Poll::Ready(None);
            }
            match this.step() {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Step::NeedInput) => {}
                Err(error) => return this.fail(error),
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => this.frame = frame,
                Poll::Ready(Some(Err(error))) => return this.fail(ChunkedError::Body(error.into())),
                Poll::Ready(None) => {
                    if let Err(error) = this.on_end_of_input() {
                        return this.fail(error);
                    }
                    this.state = State::Finished;
                    this.completed = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl<S> AwsChunkedDecoder<S> {
    /// Ends the stream with `error`: nothing follows it.
    fn fail(&mut self, error: ChunkedError) -> Poll<Option<Result<Bytes, ChunkedError>>> {
        self.state = State::Finished;
        self.frame.clear();
        Poll::Ready(Some(Err(error)))
    }
}

impl<S, E> FusedStream for AwsChunkedDecoder<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BodyError>,
{
    fn is_terminated(&self) -> bool {
        self.state == State::Finished
    }
}

#[cfg(test)]
mod tests;

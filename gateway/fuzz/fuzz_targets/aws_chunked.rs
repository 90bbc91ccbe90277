//! Fuzz target for the `aws-chunked` decoder (cargo-fuzz, libfuzzer-sys 0.4): any input, cut
//! into frames anywhere, in every mode, must end in data, an error or the end, never a panic.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use cairn_gateway::s3::aws_chunked::{AwsChunkedDecoder, ChunkedMode};
use futures_util::{Stream, stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: mode, trailer and declared length; second: frame size; the rest is the body.
    let [control, frame_size, body @ ..] = data else { return };
    let mode = if control & 1 == 0 {
        ChunkedMode::Unsigned
    } else {
        ChunkedMode::Signed {
            seed_signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".to_owned(),
            signing_key: [0x5a; 32],
            scope: "20130524/us-east-1/s3/aws4_request".to_owned(),
            timestamp: "20130524T000000Z".to_owned(),
        }
    };
    let declared = (control & 4 != 0).then_some(u64::from(control >> 3));
    let body = Bytes::copy_from_slice(body);
    let step = usize::from(*frame_size).max(1);
    let frames: Vec<Result<Bytes, std::io::Error>> =
        (0..body.len()).step_by(step).map(|at| Ok(body.slice(at..body.len().min(at + step)))).collect();
    let mut decoder = AwsChunkedDecoder::new(stream::iter(frames), mode, control & 2 != 0, declared);
    let mut cx = Context::from_waker(Waker::noop());
    let mut decoded = 0usize;
    loop {
        match Pin::new(&mut decoder).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                assert!(!bytes.is_empty());
                decoded += bytes.len();
                assert!(decoded <= body.len());
            }
            Poll::Ready(Some(Err(_))) => {
                assert!(decoder.trailer().is_none());
                break;
            }
            Poll::Ready(None) => {
                assert!(decoder.trailer().is_some());
                break;
            }
            Poll::Pending => break,
        }
    }
});

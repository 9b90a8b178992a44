//! Workload API connections, with one compatibility fix on the way in.
//!
//! gRPC clients built on grpc-core (py-spiffe, and C++/Ruby/PHP clients) send the socket path,
//! percent-encoded, as the HTTP/2 `:authority` of calls over a Unix socket
//! (`tmp%2Fagent%2Fapi.sock`). The `h2` crate under tonic refuses such a request before tonic
//! sees it (RST_STREAM PROTOCOL_ERROR: `%` outside an IPv6 zone is not a valid authority), so
//! those SDKs could not use the Workload API at all (hyperium/tonic#742). On a Unix socket the
//! authority means nothing, so [`UdsConn`] rewrites an invalid one before h2 parses it.
//!
//! The rewrite works on the raw HTTP/2 frames the client sends, without an HPACK decoder: in
//! each header block (HEADERS plus CONTINUATION frames, buffered until END_HEADERS, at most
//! [`MAX_HEADER_BLOCK`] bytes), a literal `:authority` field (named by static index 1 or by the
//! literal name) whose value is not Huffman-coded and does not parse as an authority gets every
//! byte of its value replaced by `x`. The length stays the same, so frame lengths and the HPACK
//! dynamic table (whose sizes count value lengths) stay in step with the client. grpc-core
//! never Huffman-codes such values and indexes the field once, so later calls on the
//! connection refer to the rewritten table entry. Everything else passes through unchanged;
//! a stream that does not start with the HTTP/2 preface, or a header block too large or
//! malformed, is passed through untouched for h2 to judge.
//!
//! Not covered: a Huffman-coded invalid authority (grpc-java sends one), which would need a
//! Huffman decoder; such clients still get PROTOCOL_ERROR.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::codegen::http::uri::Authority;
use tonic::transport::server::{Connected, UdsConnectInfo};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Header blocks larger than this are not inspected (the connection passes through as is).
pub(crate) const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// A Workload API connection: the Unix stream, with peer credentials for tonic and the
/// `:authority` fix on reads.
pub(crate) struct UdsConn {
    inner: UnixStream,
    fixer: AuthorityFixer,
}

impl UdsConn {
    pub fn new(inner: UnixStream) -> Self {
        UdsConn {
            inner,
            fixer: AuthorityFixer::default(),
        }
    }
}

impl Connected for UdsConn {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for UdsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.fixer.take_ready(buf) > 0 {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    // End of stream: hand over whatever is held back, then report EOF.
                    this.fixer.finish();
                    this.fixer.take_ready(buf);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => this.fixer.push(rb.filled()),
            }
        }
    }
}

impl AsyncWrite for UdsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Preface,
    Frames,
    Passthrough,
}

/// The byte-stream state machine: bytes come in with [`push`](Self::push), leave with
/// [`take_ready`](Self::take_ready) once their frame has been looked at.
#[derive(Debug, Default)]
pub(crate) struct AuthorityFixer {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` that may be handed out.
    ready: usize,
    /// Payload bytes of the current non-header frame still to pass.
    skip: usize,
    state: State,
}

impl AuthorityFixer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.advance();
    }

    /// Releases everything held back (end of stream).
    pub fn finish(&mut self) {
        self.ready = self.buf.len();
    }

    /// Moves ready bytes into `out`; returns how many.
    pub fn take_ready(&mut self, out: &mut ReadBuf<'_>) -> usize {
        let n = self.ready.min(out.remaining());
        out.put_slice(&self.buf[..n]);
        self.buf.drain(..n);
        self.ready -= n;
        n
    }

    fn advance(&mut self) {
        loop {
            let pending = &self.buf[self.ready..];
            match self.state {
                State::Passthrough => {
                    self.ready = self.buf.len();
                    return;
                }
                State::Preface => {
                    let n = pending.len().min(PREFACE.len());
                    if pending[..n] != PREFACE[..n] {
                        self.state = State::Passthrough;
                        continue;
                    }
                    if n < PREFACE.len() {
                        return;
                    }
                    self.ready += PREFACE.len();
                    self.state = State::Frames;
                }
                State::Frames => {
                    if self.skip > 0 {
                        let n = self.skip.min(pending.len());
                        self.ready += n;
                        self.skip -= n;
                        if self.skip > 0 {
                            return;
                        }
                        continue;
                    }
                    if pending.len() < FRAME_HEADER {
                        return;
                    }
                    let (len, ty, _) = frame_header(pending);
                    if ty != TYPE_HEADERS {
                        self.ready += FRAME_HEADER;
                        self.skip = len;
                        continue;
                    }
                    match header_block(pending) {
                        Block::Incomplete if pending.len() > MAX_HEADER_BLOCK => {
                            self.state = State::Passthrough;
                        }
                        Block::Incomplete => return,
                        Block::Malformed => self.state = State::Passthrough,
                        Block::Complete { total, fragments } => {
                            let start = self.ready;
                            fix_block(&mut self.buf[start..start + total], &fragments);
                            self.ready += total;
                        }
                    }
                }
            }
        }
    }
}

fn frame_header(b: &[u8]) -> (usize, u8, u8) {
    let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
    (len, b[3], b[4])
}

enum Block {
    Incomplete,
    Malformed,
    /// `total` bytes of frames; `fragments` are the byte ranges (within them) of the header
    /// block fragment, in order.
    Complete {
        total: usize,
        fragments: Vec<(usize, usize)>,
    },
}

/// Finds a whole header block (HEADERS, then CONTINUATION until END_HEADERS) at `b`.
fn header_block(b: &[u8]) -> Block {
    let mut at = 0;
    let mut fragments = Vec::new();
    loop {
        if b.len() < at + FRAME_HEADER {
            return Block::Incomplete;
        }
        let (len, ty, flags) = frame_header(&b[at..]);
        let first = fragments.is_empty();
        if (first && ty != TYPE_HEADERS) || (!first && ty != TYPE_CONTINUATION) {
            return Block::Malformed;
        }
        let body = at + FRAME_HEADER;
        if b.len() < body + len {
            return Block::Incomplete;
        }
        let (mut from, mut to) = (body, body + len);
        if ty == TYPE_HEADERS {
            if flags & FLAG_PADDED != 0 {
                let Some(&pad) = b.get(from) else {
                    return Block::Malformed;
                };
                from += 1;
                to = match to.checked_sub(usize::from(pad)) {
                    Some(t) if t >= from => t,
                    _ => return Block::Malformed,
                };
            }
            if flags & FLAG_PRIORITY != 0 {
                from += 5;
                if from > to {
                    return Block::Malformed;
                }
            }
        }
        fragments.push((from, to));
        at = body + len;
        if flags & FLAG_END_HEADERS != 0 {
            return Block::Complete {
                total: at,
                fragments,
            };
        }
    }
}

/// Rewrites invalid raw `:authority` values inside the header block spread over `fragments`.
fn fix_block(frames: &mut [u8], fragments: &[(usize, usize)]) {
    // Logical block byte i lives at frames[pos[i]].
    let pos: Vec<usize> = fragments.iter().flat_map(|&(a, b)| a..b).collect();
    let block: Vec<u8> = pos.iter().map(|&p| frames[p]).collect();
    for (from, to) in authority_values(&block) {
        let value = &block[from..to];
        let valid = std::str::from_utf8(value)
            .ok()
            .is_some_and(|s| s.parse::<Authority>().is_ok());
        if !valid {
            for &p in &pos[from..to] {
                frames[p] = b'x';
            }
        }
    }
}

/// Ranges of the raw (not Huffman-coded) values of literal `:authority` fields in an HPACK
/// block. Stops quietly at anything malformed (h2 reports it).
fn authority_values(block: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = block.get(i) {
        let prefix = if b & 0x80 != 0 {
            // Indexed field: nothing literal.
            match read_int(block, i, 7) {
                Some((_, j)) => {
                    i = j;
                    continue;
                }
                None => break,
            }
        } else if b & 0xC0 == 0x40 {
            6 // literal with incremental indexing
        } else if b & 0xE0 == 0x20 {
            // Dynamic table size update.
            match read_int(block, i, 5) {
                Some((_, j)) => {
                    i = j;
                    continue;
                }
                None => break,
            }
        } else {
            4 // literal without indexing / never indexed
        };
        let Some((index, j)) = read_int(block, i, prefix) else {
            break;
        };
        i = j;
        let is_authority = if index == 0 {
            let Some((huffman, from, to)) = read_string(block, i) else {
                break;
            };
            i = to;
            !huffman && &block[from..to] == b":authority"
        } else {
            index == 1 // static table entry 1 is :authority
        };
        let Some((huffman, from, to)) = read_string(block, i) else {
            break;
        };
        i = to;
        if is_authority && !huffman {
            out.push((from, to));
        }
    }
    out
}

/// An HPACK integer with an `n`-bit prefix at `b[i]` (RFC 7541 §5.1): (value, next index).
fn read_int(b: &[u8], i: usize, n: u32) -> Option<(usize, usize)> {
    let mask = (1usize << n) - 1;
    let mut v = usize::from(*b.get(i)?) & mask;
    let mut j = i + 1;
    if v < mask {
        return Some((v, j));
    }
    let mut shift = 0;
    loop {
        let byte = usize::from(*b.get(j)?);
        j += 1;
        v = v.checked_add((byte & 0x7f).checked_shl(shift)?)?;
        if byte & 0x80 == 0 {
            return Some((v, j));
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// An HPACK string literal at `b[i]`: (Huffman-coded?, start, end) of its bytes.
fn read_string(b: &[u8], i: usize) -> Option<(bool, usize, usize)> {
    let huffman = b.get(i)? & 0x80 != 0;
    let (len, from) = read_int(b, i, 7)?;
    let to = from.checked_add(len)?;
    (to <= b.len()).then_some((huffman, from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn lit(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut v = vec![0x40, name.len() as u8];
        v.extend_from_slice(name);
        v.push(value.len() as u8);
        v.extend_from_slice(value);
        v
    }

    /// The request block grpc-core sends (literal names, raw values).
    fn grpc_core_block(authority: &[u8]) -> Vec<u8> {
        let mut b = lit(b":path", b"/SpiffeWorkloadAPI/FetchX509SVID");
        b.extend(lit(b":authority", authority));
        b.extend([0x83, 0x86]); // :method POST, :scheme http
        b.extend(lit(b"workload.spiffe.io", b"true"));
        b
    }

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut f = AuthorityFixer::default();
        let mut out = Vec::new();
        let mut space = [0u8; 4096];
        for c in input.chunks(chunk) {
            f.push(c);
            let mut rb = ReadBuf::new(&mut space);
            while f.take_ready(&mut rb) > 0 {
                out.extend_from_slice(rb.filled());
                rb.clear();
            }
        }
        f.finish();
        let mut rb = ReadBuf::new(&mut space);
        f.take_ready(&mut rb);
        out.extend_from_slice(rb.filled());
        out
    }

    fn connection(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut s = PREFACE.to_vec();
        s.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
        for b in blocks {
            s.extend(b);
        }
        s.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0])); // DATA
        s
    }

    fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = hay.windows(from.len()).position(|w| w == from).unwrap();
        [&hay[..at], to, &hay[at + from.len()..]].concat()
    }

    #[test]
    fn percent_encoded_socket_path_is_replaced_in_every_chunking() {
        let bad = b"tmp%2Fagent%2Fapi.sock";
        let input = connection(&[frame(0x1, 0x4, 1, &grpc_core_block(bad))]);
        let want = replace(&input, bad, &[b'x'; 22]);
        for chunk in [1, 2, 7, 9, 64, input.len()] {
            assert_eq!(run(&input, chunk), want, "chunk size {chunk}");
        }
    }

    #[test]
    fn blocks_split_over_continuation_and_padded_headers_are_fixed() {
        // The value (bytes 53..72 of the block) is split between HEADERS and CONTINUATION.
        let build = |value: &[u8]| {
            let block = grpc_core_block(value);
            let (a, b) = block.split_at(60);
            let mut padded = vec![3u8]; // pad length
            padded.extend_from_slice(a);
            padded.extend([0, 0, 0]);
            connection(&[[frame(0x1, FLAG_PADDED, 1, &padded), frame(0x9, 0x4, 1, b)].concat()])
        };
        let bad = b"/run/sigil/api.sock";
        for chunk in [1, 5, 4096] {
            assert_eq!(
                run(&build(bad), chunk),
                build(&[b'x'; 19]),
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn valid_huffman_and_indexed_fields_are_left_alone() {
        let ok = frame(0x1, 0x4, 1, &grpc_core_block(b"localhost"));
        // Static-index name (0x41 = incremental, index 1) with a Huffman-flagged value.
        let huff = frame(0x1, 0x4, 3, &[0x41, 0x83, 0xaa, 0xbb, 0xcc, 0x82, 0xbe]);
        let input = connection(&[ok, huff]);
        assert_eq!(run(&input, 3), input);
    }

    #[test]
    fn static_index_name_with_raw_invalid_value_is_fixed() {
        let block = [vec![0x01, 0x05], b"a%2Fb".to_vec()].concat(); // literal w/o indexing
        let input = connection(&[frame(0x1, 0x4, 1, &block)]);
        assert_eq!(run(&input, 4), replace(&input, b"a%2Fb", b"xxxxx"));
    }

    #[test]
    fn non_http2_and_oversized_blocks_pass_through() {
        let http1 = b"GET / HTTP/1.1\r\nHost: a%2Fb\r\n\r\n".to_vec();
        assert_eq!(run(&http1, 3), http1);

        let huge = grpc_core_block(b"a%2Fb");
        let mut input = connection(&[]);
        input.truncate(PREFACE.len() + 15);
        // HEADERS without END_HEADERS, then endless CONTINUATION: given up after the cap.
        input.extend(frame(0x1, 0, 1, &huge));
        while input.len() < MAX_HEADER_BLOCK + 20_000 {
            input.extend(frame(0x9, 0, 1, &[0x82; 1000]));
        }
        assert_eq!(run(&input, 4096), input);
    }

    #[test]
    fn hpack_integers() {
        assert_eq!(read_int(&[0x0a], 0, 5), Some((10, 1)));
        assert_eq!(read_int(&[0x1f, 0x9a, 0x0a], 0, 5), Some((1337, 3)));
        assert_eq!(read_int(&[0x1f, 0x9a], 0, 5), None);
        assert_eq!(
            read_int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 0, 7),
            None
        );
    }
}

//! Keeping the tail of a command's output, so a chatty suite cannot fill memory.

use std::collections::VecDeque;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// What is kept of one output stream.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// The last bytes read; when some were dropped, from the start of a line.
    pub(crate) text: String,
    /// How many bytes were read and thrown away.
    pub(crate) dropped: u64,
}

impl From<&str> for Captured {
    fn from(text: &str) -> Self {
        Captured {
            text: text.to_owned(),
            dropped: 0,
        }
    }
}

/// Reads `r` to its end, keeping at most the last `limit` bytes.
pub(crate) async fn read_tail(mut r: impl AsyncRead + Unpin, limit: usize) -> io::Result<Captured> {
    let mut kept = VecDeque::new();
    let mut total = 0u64;
    // The byte just before the kept ones: a newline there means they start a line.
    let mut before = b'\n';
    let mut buf = vec![0; 16 * 1024];
    loop {
        // Reading goes on past the limit: a child writing to a full pipe would block.
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        kept.extend(&buf[..n]);
        if kept.len() > limit {
            let excess = kept.len() - limit;
            before = kept[excess - 1];
            kept.drain(..excess);
        }
    }
    let mut kept = Vec::from(kept);
    if before != b'\n' {
        // The first kept line is a fragment; it could end a credential the redactor
        // no longer recognises, so it goes whole. A single line longer than the limit
        // stays, cut at a character boundary.
        let start = match kept.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => kept.iter().take_while(|&&b| b & 0xC0 == 0x80).count(),
        };
        kept.drain(..start);
    }
    Ok(Captured {
        dropped: total - kept.len() as u64,
        text: String::from_utf8_lossy(&kept).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tail(input: &[u8], limit: usize) -> (String, u64) {
        let c = read_tail(input, limit).await.unwrap();
        (c.text, c.dropped)
    }

    #[tokio::test]
    async fn output_within_the_limit_is_kept_whole() {
        assert_eq!(tail(b"a\nb\n", 4).await, ("a\nb\n".into(), 0));
        assert_eq!(tail(b"", 0).await, (String::new(), 0));
    }

    #[tokio::test]
    async fn beyond_the_limit_the_tail_is_kept_from_a_line_start() {
        // The last 8 bytes are "one\n2 ok\n" minus its first byte: "ne\n" is a fragment.
        assert_eq!(tail(b"zero\none\n2 ok\n", 8).await, ("2 ok\n".into(), 9));
        assert_eq!(tail(b"zero\none\n", 4).await, ("one\n".into(), 5));
        assert_eq!(tail(b"abc", 0).await, (String::new(), 3));
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_is_cut_at_a_character() {
        // "é" is two bytes; a cut inside it must not leave half of it.
        assert_eq!(tail("aéé".as_bytes(), 3).await, ("é".into(), 3));
    }

    #[tokio::test]
    async fn large_output_is_read_to_the_end_in_bounded_memory() {
        let big = "0123456789abcdef\n".repeat(100_000) + "12 passed\n";
        let c = read_tail(big.as_bytes(), 1000).await.unwrap();
        assert!(c.text.ends_with("0123456789abcdef\n12 passed\n"));
        assert!(c.text.len() <= 1000);
        assert_eq!(c.dropped, (big.len() - c.text.len()) as u64);
    }
}

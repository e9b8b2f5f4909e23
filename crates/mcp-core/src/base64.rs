//! Base64 encoding (RFC 4648 §4: standard alphabet, padded), for header values: RFC 2047
//! encoded words in telemetry headers and HTTP Basic credentials of the token exchange.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_char(sextet: u32) -> char {
    B64.get((sextet & 63) as usize)
        .map_or('A', |&c| char::from(c))
}

/// Appends `data` in standard-alphabet, padded base64 (RFC 4648 §4) to `out`.
pub fn encode_into(data: &[u8], out: &mut String) {
    for chunk in data.chunks(3) {
        let mut buf = [0u8; 3];
        for (slot, b) in buf.iter_mut().zip(chunk) {
            *slot = *b;
        }
        let [a, b, c] = buf;
        let n = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
        out.push(b64_char(n >> 18));
        out.push(b64_char(n >> 12));
        out.push(if chunk.len() > 1 {
            b64_char(n >> 6)
        } else {
            '='
        });
        out.push(if chunk.len() > 2 { b64_char(n) } else { '=' });
    }
}

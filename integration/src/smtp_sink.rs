//! An SMTP server on loopback that records what it is sent: EHLO, STARTTLS (or TLS from
//! the first byte), AUTH PLAIN and LOGIN, MAIL, RCPT, DATA, RSET, QUIT. Its answers to
//! DATA can be scripted (a `451` to test a retry, a `550` to test giving up).
//!
//! It runs on a thread with a runtime of its own, so that sync tests and `#[tokio::test]`s
//! can both use it; dropping it stops accepting.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::TlsAcceptor;

/// One message the sink accepted.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, headers and body, dot-unstuffed.
    pub data: String,
    /// `user`, `password` from AUTH, if any.
    pub auth: Option<(String, String)>,
    /// Whether the session was under TLS when the message came.
    pub encrypted: bool,
}

/// How a client reaches the sink.
pub enum Mode {
    Plain,
    /// Offers STARTTLS (and AUTH only after it), with this certificate.
    StartTls(super::SelfSigned),
    /// TLS from the first byte.
    Tls(super::SelfSigned),
}

#[derive(Default)]
struct Shared {
    mails: Vec<Mail>,
    /// DATA commands completed, accepted or not.
    transactions: usize,
    /// Answers to the next DATA commands instead of `250`.
    replies: VecDeque<String>,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    /// The certificate's DER, for the client to trust (TLS modes).
    pub root: Option<CertificateDer<'static>>,
    shared: Arc<Mutex<Shared>>,
    /// Dropped with the sink: the accept loop ends.
    _stop: tokio::sync::oneshot::Sender<()>,
    _cert: Option<super::SelfSigned>,
}

impl SmtpSink {
    pub fn start(mode: Mode) -> SmtpSink {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tls, cert, starttls) = match mode {
            Mode::Plain => (None, None, false),
            Mode::StartTls(c) => (Some(acceptor(&c)), Some(c), true),
            Mode::Tls(c) => (Some(acceptor(&c)), Some(c), false),
        };
        let root = cert.as_ref().map(|c| der(&c.cert));
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let accept = async {
                    while let Ok((tcp, _)) = listener.accept().await {
                        tokio::spawn(serve(tcp, tls.clone(), starttls, state.clone()));
                    }
                };
                tokio::select! { _ = accept => {}, _ = stopped => {} }
            });
        });
        SmtpSink { addr, root, shared, _stop: stop, _cert: cert }
    }

    /// The next DATA commands are answered with these lines, in order (`451 4.3.0 busy`).
    pub fn reply_with(&self, replies: &[&str]) {
        self.shared.lock().unwrap().replies.extend(replies.iter().map(|r| r.to_string()));
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.lock().unwrap().mails.clone()
    }

    /// DATA commands completed, accepted or refused.
    pub fn transactions(&self) -> usize {
        self.shared.lock().unwrap().transactions
    }
}

fn der(pem: &std::path::Path) -> CertificateDer<'static> {
    let bytes = std::fs::read(pem).unwrap();
    let cert = rustls_pemfile::certs(&mut bytes.as_slice()).next().unwrap().unwrap();
    cert
}

fn acceptor(cert: &super::SelfSigned) -> TlsAcceptor {
    let key = std::fs::read(&cert.key).unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_slice()).unwrap().unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der(&cert.cert)], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

async fn serve(tcp: TcpStream, tls: Option<TlsAcceptor>, starttls: bool, shared: Arc<Mutex<Shared>>) {
    let Some(acceptor) = tls else {
        converse(tcp, false, false, true, &shared).await;
        return;
    };
    if !starttls {
        if let Ok(stream) = acceptor.accept(tcp).await {
            converse(stream, true, false, true, &shared).await;
        }
        return;
    }
    if let Some(tcp) = converse(tcp, false, true, true, &shared).await {
        if let Ok(stream) = acceptor.accept(tcp).await {
            converse(stream, true, false, false, &shared).await;
        }
    }
}

/// One session (or its part before STARTTLS, when the stream comes back to be upgraded;
/// the upgraded part is not greeted again: the client speaks first, EHLO).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    encrypted: bool,
    offer_starttls: bool,
    greet: bool,
    shared: &Mutex<Shared>,
) -> Option<S> {
    let mut io = BufReader::new(stream);
    if greet {
        send(&mut io, "220 sink ESMTP").await?;
    }
    let mut mail = Mail { encrypted, ..Mail::default() };
    for _ in 0..1000 {
        let line = read_line(&mut io).await?;
        let upper = line.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        match verb {
            "EHLO" => {
                let mut lines = vec!["250-sink"];
                if offer_starttls {
                    lines.push("250-STARTTLS");
                } else {
                    lines.push("250-AUTH PLAIN LOGIN");
                }
                lines.push("250 8BITMIME");
                send(&mut io, &lines.join("\r\n")).await?;
            }
            "HELO" | "NOOP" => send(&mut io, "250 ok").await?,
            "STARTTLS" if offer_starttls => {
                send(&mut io, "220 go ahead").await?;
                return Some(io.into_inner());
            }
            "AUTH" => mail.auth = Some(auth(&mut io, &line).await?),
            "MAIL" => {
                mail.from = address(&line);
                send(&mut io, "250 ok").await?;
            }
            "RCPT" => {
                mail.to.push(address(&line));
                send(&mut io, "250 ok").await?;
            }
            "DATA" => {
                send(&mut io, "354 end with <CRLF>.<CRLF>").await?;
                mail.data = read_data(&mut io).await?;
                let reply = {
                    let mut s = shared.lock().unwrap();
                    s.transactions += 1;
                    let reply = s.replies.pop_front().unwrap_or_else(|| "250 2.0.0 queued".into());
                    if reply.starts_with('2') {
                        s.mails.push(mail.clone());
                    }
                    reply
                };
                send(&mut io, &reply).await?;
                mail = Mail { encrypted, auth: mail.auth.clone(), ..Mail::default() };
            }
            "RSET" => {
                mail = Mail { encrypted, auth: mail.auth.clone(), ..Mail::default() };
                send(&mut io, "250 ok").await?;
            }
            "QUIT" => {
                send(&mut io, "221 bye").await?;
                return None;
            }
            _ => send(&mut io, "502 5.5.2 not implemented").await?,
        }
    }
    None
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, reply: &str) -> Option<()> {
    io.get_mut().write_all(format!("{reply}\r\n").as_bytes()).await.ok()?;
    io.get_mut().flush().await.ok()
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match io.read_line(&mut line).await {
        Ok(1..) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        _ => None,
    }
}

async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>) -> Option<String> {
    let mut data = String::new();
    for _ in 0..100_000 {
        let line = read_line(io).await?;
        if line == "." {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push('\n');
    }
    None
}

fn address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end.max(start)].to_owned()
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap_or_default()
}

/// AUTH PLAIN (with or without the initial response) or LOGIN; always accepted.
async fn auth<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, line: &str) -> Option<(String, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let credentials = match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
        Some("PLAIN") => {
            let response = match words.get(2) {
                Some(r) => r.to_string(),
                None => {
                    send(io, "334 ").await?;
                    read_line(io).await?
                }
            };
            let decoded = b64(&response);
            let mut parts = decoded.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
            let _authzid = parts.next();
            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
        }
        Some("LOGIN") => {
            send(io, "334 VXNlcm5hbWU6").await?;
            let user = String::from_utf8_lossy(&b64(&read_line(io).await?)).into_owned();
            send(io, "334 UGFzc3dvcmQ6").await?;
            let password = String::from_utf8_lossy(&b64(&read_line(io).await?)).into_owned();
            (user, password)
        }
        _ => {
            send(io, "504 5.5.4 unrecognized mechanism").await?;
            return Some(Default::default());
        }
    };
    send(io, "235 2.7.0 authenticated").await?;
    Some(credentials)
}

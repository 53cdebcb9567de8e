//! Client-role XMPP negotiation over an already-secured byte stream (§3): stream header,
//! SASL PLAIN, stream restart, resource binding and session.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::config::Credentials;
use super::transcript::{Direction, Transcript};
use crate::error::ConnectError;
use crate::wire::{self, Element, Frame, FrameReader, MessageStanza};

/// An authenticated, bound stream ready for application traffic.
pub(crate) struct Established<R, W> {
    pub reader: FrameReader<R>,
    pub writer: W,
    /// The full JID the server bound, e.g. `123@gcm.googleapis.com/w1D00C5E11`.
    pub jid: String,
    /// A `<message>` that arrived before the session result: the server treated the stream
    /// as ready once bound (spec §3.7). It is handled first, and the session result, when it
    /// comes, is read like any other iq result.
    pub early: Option<MessageStanza>,
}

/// What the negotiation needs besides the stream.
pub(crate) struct Negotiation<'a> {
    pub credentials: &'a Credentials,
    /// `to` of our stream header.
    pub stream_to: &'a str,
    pub resource: Option<&'a str>,
    /// Limit for each step.
    pub step_timeout: Duration,
    pub transcript: Option<&'a Transcript>,
}

/// Runs the negotiation; every failure is typed and never contains the server key.
pub(crate) async fn negotiate<R, W>(
    mut reader: FrameReader<R>,
    mut writer: W,
    n: &Negotiation<'_>,
) -> Result<Established<R, W>, ConnectError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(512);

    wire::write::client_stream_header(&mut buf, n.stream_to);
    send(&mut writer, &mut buf, n).await?;
    expect_stream_open(&mut reader, n, "the server's stream header").await?;
    let features = expect_element(&mut reader, n, "SASL features").await?;
    require_plain(&features)?;

    wire::write::auth_plain(
        &mut buf,
        &n.credentials.authcid(),
        n.credentials.server_key.expose(),
    );
    send(&mut writer, &mut buf, n).await?;
    let outcome = expect_element(&mut reader, n, "the SASL outcome").await?;
    check_auth(&outcome, &n.credentials.sender_id)?;

    wire::write::client_stream_header(&mut buf, n.stream_to);
    send(&mut writer, &mut buf, n).await?;
    expect_stream_open(&mut reader, n, "the restarted stream header").await?;
    let features = expect_element(&mut reader, n, "post-auth features").await?;
    if !features.is(wire::NS_STREAMS, "features") || features.child(wire::NS_BIND, "bind").is_none()
    {
        return Err(protocol("the server did not offer resource binding"));
    }

    wire::write::iq_bind(&mut buf, "bind-1", n.resource);
    send(&mut writer, &mut buf, n).await?;
    let reply = expect_element(&mut reader, n, "the bind result").await?;
    let jid = bound_jid(&reply)?;

    let mut early = None;
    if features.child(wire::NS_SESSION, "session").is_some() {
        wire::write::iq_session(&mut buf, "sess-1");
        send(&mut writer, &mut buf, n).await?;
        const STAGE: &str = "the session result";
        match next(&mut reader, n, STAGE).await? {
            Frame::Message(m) => early = Some(m),
            Frame::Element(e) if e.is(wire::NS_STREAMS, "error") => return Err(stream_error(&e)),
            Frame::Element(reply) => check_iq_result(&reply, "sess-1", "session")?,
            other => return Err(unexpected(other, STAGE)),
        }
    }
    Ok(Established {
        reader,
        writer,
        jid,
        early,
    })
}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut Vec<u8>,
    n: &Negotiation<'_>,
) -> Result<(), ConnectError> {
    if let Some(t) = n.transcript {
        t.record(Direction::Out, buf);
    }
    w.write_all(buf).await.map_err(wire_io)?;
    w.flush().await.map_err(wire_io)?;
    buf.clear();
    Ok(())
}

fn wire_io(e: std::io::Error) -> ConnectError {
    ConnectError::Wire(e.into())
}

fn protocol(msg: impl Into<String>) -> ConnectError {
    ConnectError::Protocol(msg.into())
}

async fn next<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    n: &Negotiation<'_>,
    stage: &'static str,
) -> Result<Frame, ConnectError> {
    match tokio::time::timeout(n.step_timeout, reader.next_frame()).await {
        Err(_) => Err(ConnectError::Timeout {
            stage,
            after: n.step_timeout,
        }),
        Ok(Err(crate::wire::WireError::Eof { .. })) => Err(protocol(format!(
            "the server closed the connection while we waited for {stage}"
        ))),
        Ok(r) => Ok(r?),
    }
}

async fn expect_stream_open<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    n: &Negotiation<'_>,
    stage: &'static str,
) -> Result<(), ConnectError> {
    match next(reader, n, stage).await? {
        Frame::StreamOpen(_) => Ok(()),
        other => Err(unexpected(other, stage)),
    }
}

async fn expect_element<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    n: &Negotiation<'_>,
    stage: &'static str,
) -> Result<Element, ConnectError> {
    match next(reader, n, stage).await? {
        Frame::Element(e) if e.is(wire::NS_STREAMS, "error") => Err(stream_error(&e)),
        Frame::Element(e) => Ok(e),
        other => Err(unexpected(other, stage)),
    }
}

fn unexpected(frame: Frame, stage: &str) -> ConnectError {
    let what = match frame {
        Frame::StreamOpen(_) => "a stream header".to_owned(),
        Frame::StreamClose => "the end of the stream".to_owned(),
        Frame::Message(_) => "a <message>".to_owned(),
        Frame::Element(e) => format!("<{}>", e.name),
    };
    protocol(format!("expected {stage}, got {what}"))
}

/// Converts a `<stream:error>` element into a typed error.
pub(crate) fn stream_error(e: &Element) -> ConnectError {
    let condition = e
        .children
        .iter()
        .find(|c| c.ns == wire::NS_STREAM_ERRORS && c.name != "text")
        .map_or_else(|| "undefined-condition".to_owned(), |c| c.name.clone());
    let text = e
        .child(wire::NS_STREAM_ERRORS, "text")
        .map(|t| t.text.clone());
    ConnectError::StreamError { condition, text }
}

fn require_plain(features: &Element) -> Result<(), ConnectError> {
    let mechanisms = features
        .child(wire::NS_SASL, "mechanisms")
        .filter(|_| features.is(wire::NS_STREAMS, "features"))
        .ok_or_else(|| protocol("the server offered no SASL mechanisms"))?;
    if mechanisms
        .children
        .iter()
        .any(|m| m.name == "mechanism" && m.text.trim() == "PLAIN")
    {
        Ok(())
    } else {
        Err(protocol("the server does not offer SASL PLAIN"))
    }
}

fn check_auth(outcome: &Element, sender_id: &str) -> Result<(), ConnectError> {
    if outcome.is(wire::NS_SASL, "success") {
        return Ok(());
    }
    if outcome.is(wire::NS_SASL, "failure") {
        let condition = outcome
            .children
            .iter()
            .find(|c| c.name != "text")
            .map_or_else(|| "not-authorized".to_owned(), |c| c.name.clone());
        return Err(ConnectError::Auth {
            sender_id: sender_id.to_owned(),
            condition,
        });
    }
    Err(protocol(format!(
        "expected SASL success or failure, got <{}>",
        outcome.name
    )))
}

fn check_iq_result(reply: &Element, id: &str, what: &str) -> Result<(), ConnectError> {
    if !reply.is(wire::NS_CLIENT, "iq") {
        return Err(protocol(format!(
            "expected the {what} <iq> result, got <{}>",
            reply.name
        )));
    }
    // Tolerate a missing id (seen in the wild), refuse a different one.
    if reply.attr("id").is_some_and(|got| got != id) {
        return Err(protocol(format!("{what} result has an unexpected id")));
    }
    match reply.attr("type") {
        Some("result") => Ok(()),
        _ => {
            let condition = reply
                .child(wire::NS_CLIENT, "error")
                .and_then(|e| e.children.first())
                .map_or("unknown", |c| c.name.as_str());
            Err(protocol(format!("the server refused {what}: {condition}")))
        }
    }
}

fn bound_jid(reply: &Element) -> Result<String, ConnectError> {
    check_iq_result(reply, "bind-1", "bind")?;
    let jid = reply
        .child(wire::NS_BIND, "bind")
        .and_then(|b| b.child(wire::NS_BIND, "jid"))
        .map(|j| j.text.trim().to_owned())
        .filter(|j| !j.is_empty())
        .ok_or_else(|| protocol("the bind result carries no JID"))?;
    Ok(jid)
}

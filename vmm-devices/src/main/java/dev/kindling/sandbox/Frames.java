package dev.kindling.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/** The frames of docs/agent-protocol.md: an 8-byte little-endian header and a body of at most {@link #MAX_BODY} bytes. */
final class Frames {
    static final int HEADER = 8;
    static final int MAX_BODY = 1 << 20;
    static final int VERSION = 1;

    static final int HELLO = 1, ERROR = 2, PING = 3, PONG = 4;
    static final int EXEC = 16, STARTED = 17, STDIN = 18, STDOUT = 19, STDERR = 20, SIGNAL = 21, EXIT = 22;
    static final int PUT = 32, DATA = 33, OK = 34, GET = 35, FILE = 36;

    static final int EXEC_STDIN_PIPE = 1;
    static final int EPROTO = 71;

    private Frames() {}

    /** One frame as read: its type and body. */
    record Frame(int type, byte[] body) {
        Body reader() {
            return new Body(this);
        }

        @Override
        public String toString() {
            return name(type) + "[" + body.length + " bytes]";
        }
    }

    static String name(int type) {
        return switch (type) {
            case HELLO -> "HELLO";
            case ERROR -> "ERROR";
            case PING -> "PING";
            case PONG -> "PONG";
            case EXEC -> "EXEC";
            case STARTED -> "STARTED";
            case STDIN -> "STDIN";
            case STDOUT -> "STDOUT";
            case STDERR -> "STDERR";
            case SIGNAL -> "SIGNAL";
            case EXIT -> "EXIT";
            case PUT -> "PUT";
            case DATA -> "DATA";
            case OK -> "OK";
            case GET -> "GET";
            case FILE -> "FILE";
            default -> "type " + type;
        };
    }

    /** Writes one frame (not flushed). */
    static void write(OutputStream out, int type, byte[] body, int off, int len) throws IOException {
        if (len > MAX_BODY) {
            throw new IllegalArgumentException("frame body of " + len + " bytes is over " + MAX_BODY);
        }
        byte[] header = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(len).putShort((short) type).putShort((short) 0).array();
        out.write(header);
        out.write(body, off, len);
    }

    static void write(OutputStream out, int type, byte[] body) throws IOException {
        write(out, type, body, 0, body.length);
    }

    /**
     * Reads one frame; null at end of stream before a header.
     *
     * @throws ProtocolException for a malformed header
     * @throws EOFException for a stream ending inside a frame
     */
    static Frame read(InputStream in) throws IOException {
        byte[] header = new byte[HEADER];
        int n = in.readNBytes(header, 0, HEADER);
        if (n == 0) {
            return null;
        }
        if (n < HEADER) {
            throw new EOFException("the agent's stream ended inside a frame header");
        }
        ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
        long length = Integer.toUnsignedLong(h.getInt());
        int type = Short.toUnsignedInt(h.getShort());
        int reserved = Short.toUnsignedInt(h.getShort());
        if (length > MAX_BODY) {
            throw new ProtocolException("frame " + name(type) + " announces " + length + " bytes, over " + MAX_BODY);
        }
        if (reserved != 0) {
            throw new ProtocolException("frame " + name(type) + " has reserved field " + reserved);
        }
        byte[] body = in.readNBytes((int) length);
        if (body.length < length) {
            throw new EOFException("the agent's stream ended inside a " + name(type) + " frame");
        }
        return new Frame(type, body);
    }

    /** A frame the peer should not have sent. */
    static final class ProtocolException extends IOException {
        ProtocolException(String message) {
            super(message);
        }
    }

    /** Builds a body: little-endian integers and length-prefixed UTF-8 strings. */
    static final class Builder {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Builder u32(long v) {
            out.write((int) v);
            out.write((int) (v >>> 8));
            out.write((int) (v >>> 16));
            out.write((int) (v >>> 24));
            return this;
        }

        Builder u64(long v) {
            return u32(v).u32(v >>> 32);
        }

        Builder string(String s) {
            if (s.indexOf('\0') >= 0) {
                throw new IllegalArgumentException("a string for the agent may not hold a NUL byte: " + s.replace('\0', '@'));
            }
            byte[] b = s.getBytes(UTF_8);
            u32(b.length);
            out.writeBytes(b);
            return this;
        }

        Builder strings(List<String> list) {
            u32(list.size());
            list.forEach(this::string);
            return this;
        }

        Builder bytes(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        byte[] build() {
            return out.toByteArray();
        }
    }

    static Builder body() {
        return new Builder();
    }

    /** Reads a body's fields; each read checks the body holds them, and {@link #end()} that nothing is left. */
    static final class Body {
        private final Frame frame;
        private final ByteBuffer b;

        Body(Frame frame) {
            this.frame = frame;
            this.b = ByteBuffer.wrap(frame.body()).order(ByteOrder.LITTLE_ENDIAN);
        }

        private void need(int n, String what) throws ProtocolException {
            if (b.remaining() < n) {
                throw new ProtocolException(name(frame.type()) + " body too short for its " + what);
            }
        }

        long u32(String what) throws ProtocolException {
            need(4, what);
            return Integer.toUnsignedLong(b.getInt());
        }

        int i32(String what) throws ProtocolException {
            need(4, what);
            return b.getInt();
        }

        long u64(String what) throws ProtocolException {
            need(8, what);
            return b.getLong();
        }

        String string(String what) throws ProtocolException {
            long n = u32(what + " length");
            if (n > b.remaining()) {
                throw new ProtocolException(name(frame.type()) + " " + what + " runs past the body");
            }
            byte[] s = new byte[(int) n];
            b.get(s);
            return new String(s, UTF_8);
        }

        void end() throws ProtocolException {
            if (b.hasRemaining()) {
                throw new ProtocolException(name(frame.type()) + " body has " + b.remaining() + " bytes past its fields");
            }
        }
    }
}

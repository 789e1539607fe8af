package dev.kindling.devices.virtio.vsock;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;

/**
 * One stream connection between the host program and the guest, with blocking streams and a
 * blocking {@link ByteChannel}. The guest's credit paces writes: a guest that does not read stops
 * the writer rather than buffering without bound. {@link #close()} ends it both ways (the guest
 * sees a shutdown, then the connection closes); the guest's close is end of stream here.
 */
public final class VsockConnection implements ByteChannel {
    private VsockConnection() {}

    /** The host's port of this connection. */
    public int localPort() {
        throw new UnsupportedOperationException("not yet");
    }

    /** The guest's port of this connection. */
    public int peerPort() {
        throw new UnsupportedOperationException("not yet");
    }

    /** Reads from the guest: -1 at end of stream. One stream per connection; closing it closes the connection. */
    public InputStream inputStream() {
        throw new UnsupportedOperationException("not yet");
    }

    /** Writes to the guest. Closing it closes the connection. */
    public OutputStream outputStream() {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    /** Ends this side's output (the guest reads end of stream) and keeps reading. */
    public void shutdownOutput() throws IOException {
        throw new UnsupportedOperationException("not yet");
    }

    @Override
    public boolean isOpen() {
        throw new UnsupportedOperationException("not yet");
    }

    /** Closes the connection; a read or write blocked in another thread ends with an exception. Idempotent. */
    @Override
    public void close() {
        throw new UnsupportedOperationException("not yet");
    }
}

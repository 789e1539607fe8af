package dev.kindling.sandbox;

import dev.kindling.devices.virtio.vsock.VsockConnection;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** One connection to the agent. {@link #close()} must wake a read or write blocked in another thread. */
interface Link extends AutoCloseable {
    InputStream input();

    OutputStream output();

    @Override
    void close();

    /** Opens a new connection to the agent. */
    @FunctionalInterface
    interface Connector {
        Link connect() throws IOException;
    }

    static Link of(VsockConnection c) {
        return new Link() {
            @Override
            public InputStream input() {
                return c.inputStream();
            }

            @Override
            public OutputStream output() {
                return c.outputStream();
            }

            @Override
            public void close() {
                c.close();
            }
        };
    }
}

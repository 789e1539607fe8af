package dev.kindling.devices.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.SocketException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** A Unix-socket client of the vsock server, as the tests dial it. */
final class UdsClients {
    private UdsClients() {}

    static SocketChannel dial(Path path) throws IOException {
        return SocketChannel.open(UnixDomainSocketAddress.of(path));
    }

    static void send(SocketChannel c, String s) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            c.write(b);
        }
    }

    /** Reads until the server closes the client; what it sent before (nothing, for a refused client). */
    static String readToClose(SocketChannel c) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(256);
        try {
            while (c.read(b) >= 0) {
                assertThat(b.hasRemaining()).as("the server sent too much").isTrue();
            }
        } catch (SocketException e) {
            // closed with bytes of ours unread: a reset, which is a close as well
            assertThat(e).hasMessageContaining("reset");
        }
        return new String(b.array(), 0, b.position(), StandardCharsets.US_ASCII);
    }
}

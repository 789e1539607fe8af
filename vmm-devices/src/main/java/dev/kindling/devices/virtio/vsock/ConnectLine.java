package dev.kindling.devices.virtio.vsock;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;

/**
 * The {@code CONNECT <port>\n} line a client of the host Unix socket sends first, read as
 * Firecracker's muxer reads it: UTF-8 words split on ASCII whitespace, the first {@code connect} in any
 * case, the second the port as an unsigned 32-bit decimal (a leading {@code +} allowed); later words
 * are ignored.
 */
final class ConnectLine {
    /** Most bytes before the newline. */
    static final int MAX_LENGTH = 32;

    private ConnectLine() {}

    /** The port that {@code line} (the bytes before the newline) asks for, or empty if it is malformed. */
    static OptionalLong parse(byte[] line, int length) {
        if (length > MAX_LENGTH) {
            return OptionalLong.empty();
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(line, 0, length))
                    .toString();
        } catch (CharacterCodingException e) {
            return OptionalLong.empty();
        }
        List<String> words = Arrays.stream(text.split("\\s+")).filter(w -> !w.isEmpty()).limit(2).toList();
        if (words.size() < 2 || !words.get(0).toLowerCase(Locale.ROOT).equals("connect")) {
            return OptionalLong.empty();
        }
        return port(words.get(1));
    }

    private static OptionalLong port(String word) {
        String digits = word.startsWith("+") ? word.substring(1) : word;
        if (digits.isEmpty()) {
            return OptionalLong.empty();
        }
        long value = 0;
        for (int i = 0; i < digits.length(); i++) {
            char c = digits.charAt(i);
            if (c < '0' || c > '9') {
                return OptionalLong.empty();
            }
            value = value * 10 + (c - '0');
            if (value > 0xFFFF_FFFFL) {
                return OptionalLong.empty();
            }
        }
        return OptionalLong.of(value);
    }
}

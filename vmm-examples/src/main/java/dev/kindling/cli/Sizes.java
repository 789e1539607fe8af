package dev.kindling.cli;

import java.util.Locale;

/** Byte sizes on the command line: a number with an optional K, M or G suffix (powers of 1024), as QEMU takes them. */
final class Sizes {
    private Sizes() {}

    /** {@code text} in bytes; a bad size is a usage error naming {@code what}. */
    static long parse(String what, String text) {
        if (text == null || text.isEmpty()) {
            throw new UsageException(what + " needs a size, e.g. 4M");
        }
        String t = text.toUpperCase(Locale.ROOT);
        int shift = switch (t.charAt(t.length() - 1)) {
            case 'K' -> 10;
            case 'M' -> 20;
            case 'G' -> 30;
            default -> 0;
        };
        String digits = shift == 0 ? t : t.substring(0, t.length() - 1);
        long n;
        try {
            n = Long.parseLong(digits);
        } catch (NumberFormatException e) {
            throw new UsageException(what + " '" + text + "' is not a size (a number of bytes, or with K, M or G)");
        }
        if (n <= 0 || n > Long.MAX_VALUE >> shift) {
            throw new UsageException(what + " '" + text + "' is out of range");
        }
        return n << shift;
    }
}

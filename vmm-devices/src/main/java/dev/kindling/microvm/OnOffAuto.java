package dev.kindling.microvm;

import java.util.Locale;

/** A QEMU-style tri-state toggle: AUTO lets the machine decide (see each toggle's documentation). */
public enum OnOffAuto {
    ON, OFF, AUTO;

    /** Parses {@code on}, {@code off} or {@code auto}; {@code what} names the setting in the error. */
    public static OnOffAuto parse(String what, String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "on" -> ON;
            case "off" -> OFF;
            case "auto" -> AUTO;
            default -> throw new ConfigException(what, what + " must be on, off or auto, got '" + value + "'");
        };
    }

    /** Whether the toggle is on, with {@code auto} resolved to {@code autoValue}. */
    public boolean resolve(boolean autoValue) {
        return this == AUTO ? autoValue : this == ON;
    }
}

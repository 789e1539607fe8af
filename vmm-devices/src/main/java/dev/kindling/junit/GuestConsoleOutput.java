package dev.kindling.junit;

/**
 * What a guest printed on its console, attached by {@link KindlingExtension} as a suppressed exception
 * to the failure of a test that used the guest, so the test report shows it next to the failure.
 */
public final class GuestConsoleOutput extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The failure shows at most this many of the console's last lines. */
    public static final int TAIL_LINES = 200;
    /** ... and at most this many of their last characters. */
    public static final int TAIL_CHARS = 32 * 1024;

    private final String guest;
    private final String text;

    GuestConsoleOutput(String guest, String text) {
        super("console of " + guest + " (last lines):\n" + (text.isEmpty() ? "(nothing printed)" : text),
                null, false, false);
        this.guest = guest;
        this.text = text;
    }

    /** The field or parameter the guest was injected into. */
    public String guest() {
        return guest;
    }

    /** The end of the console output ({@link #TAIL_LINES}, {@link #TAIL_CHARS}). */
    public String text() {
        return text;
    }

    /** The last {@link #TAIL_LINES} lines of {@code text}, cut to its last {@link #TAIL_CHARS} characters. */
    static String tail(String text) {
        int start = text.length();
        int lines = 0;
        // a final line end does not start another line
        int from = text.endsWith("\n") ? text.length() - 2 : text.length() - 1;
        for (int i = from; i >= 0; i--) {
            if (text.charAt(i) == '\n' && ++lines == TAIL_LINES) {
                break;
            }
            start = i;
        }
        return text.substring(Math.max(start, text.length() - TAIL_CHARS));
    }
}

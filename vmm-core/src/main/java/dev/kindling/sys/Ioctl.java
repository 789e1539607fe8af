package dev.kindling.sys;

/** An ioctl request number with its name, so errors can say which call failed. */
public record Ioctl(String name, long number) {
    private static final int NRBITS = 8, TYPEBITS = 8, SIZEBITS = 14;
    private static final int TYPESHIFT = NRBITS, SIZESHIFT = TYPESHIFT + TYPEBITS, DIRSHIFT = SIZESHIFT + SIZEBITS;
    private static final int NONE = 0, WRITE = 1, READ = 2;

    public static Ioctl io(String name, int type, int nr) {
        return new Ioctl(name, encode(NONE, type, nr, 0));
    }

    public static Ioctl ior(String name, int type, int nr, long size) {
        return new Ioctl(name, encode(READ, type, nr, size));
    }

    public static Ioctl iow(String name, int type, int nr, long size) {
        return new Ioctl(name, encode(WRITE, type, nr, size));
    }

    public static Ioctl iowr(String name, int type, int nr, long size) {
        return new Ioctl(name, encode(READ | WRITE, type, nr, size));
    }

    private static long encode(int dir, int type, int nr, long size) {
        if (size < 0 || size >= (1L << SIZEBITS)) {
            throw new IllegalArgumentException("ioctl argument size " + size + " does not fit");
        }
        return ((long) dir << DIRSHIFT) | (size << SIZESHIFT) | ((long) type << TYPESHIFT) | nr;
    }

    @Override
    public String toString() {
        return name + "(0x" + Long.toHexString(number) + ")";
    }
}

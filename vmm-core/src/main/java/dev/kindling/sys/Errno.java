package dev.kindling.sys;

/** Linux x86-64 errno names, for messages such as {@code EINVAL (22)}. */
public final class Errno {
    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int ENOMEM = 12;
    public static final int EACCES = 13;
    public static final int EFAULT = 14;
    public static final int EBUSY = 16;
    public static final int EEXIST = 17;
    public static final int ENODEV = 19;
    public static final int EINVAL = 22;
    public static final int ENOTTY = 25;
    public static final int ENOSPC = 28;
    public static final int EPIPE = 32;
    public static final int ERANGE = 34;
    public static final int ENOSYS = 38;
    public static final int ENXIO = 6;
    public static final int E2BIG = 7;
    public static final int ENFILE = 23;
    /** The file is in a bad state: a tap whose device went away. */
    public static final int EBADFD = 77;
    public static final int EMFILE = 24;
    public static final int EOPNOTSUPP = 95;
    public static final int ECONNRESET = 104;
    public static final int ENOTCONN = 107;
    public static final int ECONNREFUSED = 111;
    public static final int EINPROGRESS = 115;

    private static final String[] NAMES = new String[134];

    static {
        String[] n = {
            null, "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF",
            "ECHILD", "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV",
            "ENOTDIR", "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE",
            "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY",
            "ELOOP"};
        System.arraycopy(n, 0, NAMES, 0, n.length);
        NAMES[61] = "ENODATA";
        NAMES[62] = "ETIME";
        NAMES[75] = "EOVERFLOW";
        NAMES[77] = "EBADFD";
        NAMES[88] = "ENOTSOCK";
        NAMES[95] = "EOPNOTSUPP";
        NAMES[97] = "EAFNOSUPPORT";
        NAMES[98] = "EADDRINUSE";
        NAMES[104] = "ECONNRESET";
        NAMES[107] = "ENOTCONN";
        NAMES[110] = "ETIMEDOUT";
        NAMES[111] = "ECONNREFUSED";
        NAMES[125] = "ECANCELED";
    }

    private Errno() {}

    /** The symbolic name of {@code errno}, or {@code "errno N"} when unknown. */
    public static String name(int errno) {
        if (errno > 0 && errno < NAMES.length && NAMES[errno] != null) {
            return NAMES[errno];
        }
        return "errno " + errno;
    }
}

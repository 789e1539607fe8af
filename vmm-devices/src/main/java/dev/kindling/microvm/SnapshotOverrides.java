package dev.kindling.microvm;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.List;

/**
 * What {@link Microvm#restore(Path, SnapshotOverrides)} changes of a snapshot's configuration, as
 * Firecracker's snapshot load does: the writable disks' images (in the order of their devices; empty:
 * the copies in the snapshot's directory), the guest's vsock CID (0: the saved one), the vsock's
 * Unix socket path (null: the saved one), and where the serial console's input comes from and its
 * output goes (null: nowhere but {@link Microvm#console()}), since streams are not saved.
 */
public record SnapshotOverrides(List<Path> disks, long vsockCid, Path vsockUdsPath, InputStream serialInput,
                                OutputStream serialOutput) {
    public SnapshotOverrides {
        disks = List.copyOf(disks);
        if (vsockCid != 0 && vsockCid < 3) {
            throw new IllegalArgumentException("vsock CID " + vsockCid + " is reserved: guest CIDs start at 3");
        }
    }

    public static SnapshotOverrides none() {
        return new SnapshotOverrides(List.of(), 0, null, null, null);
    }

    public SnapshotOverrides withDisks(Path... images) {
        return new SnapshotOverrides(List.of(images), vsockCid, vsockUdsPath, serialInput, serialOutput);
    }

    public SnapshotOverrides withVsockCid(long cid) {
        return new SnapshotOverrides(disks, cid, vsockUdsPath, serialInput, serialOutput);
    }

    public SnapshotOverrides withVsockUdsPath(Path path) {
        return new SnapshotOverrides(disks, vsockCid, path, serialInput, serialOutput);
    }

    public SnapshotOverrides withSerial(InputStream in, OutputStream out) {
        return new SnapshotOverrides(disks, vsockCid, vsockUdsPath, in, out);
    }
}

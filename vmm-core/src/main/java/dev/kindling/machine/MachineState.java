package dev.kindling.machine;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * Everything of a paused {@link Machine} but its memory: the platform's VM-wide state, each vCPU's,
 * and each registered part's (the device models), in the order they were registered.
 */
public record MachineState(byte[] platform, List<byte[]> vcpus, List<Part> parts) {
    /** One registered part's state, by the name it was registered under. */
    public record Part(String name, byte[] state) {}

    public MachineState {
        vcpus = List.copyOf(vcpus);
        parts = List.copyOf(parts);
    }

    public List<String> partNames() {
        return parts.stream().map(Part::name).toList();
    }

    public void write(StateWriter out) {
        out.putBytes(platform);
        out.putInt(vcpus.size());
        vcpus.forEach(out::putBytes);
        out.putInt(parts.size());
        for (Part p : parts) {
            out.putString(p.name());
            out.putBytes(p.state());
        }
    }

    /** Reads what {@link #write} wrote. */
    public static MachineState read(StateReader in) {
        byte[] platform = in.getBytes();
        int vcpuCount = in.getInt("vCPU count", 1, 1024);
        List<byte[]> vcpus = new ArrayList<>();
        for (int i = 0; i < vcpuCount; i++) {
            vcpus.add(in.getBytes());
        }
        int partCount = in.getInt("part count", 0, 4096);
        List<Part> parts = new ArrayList<>();
        for (int i = 0; i < partCount; i++) {
            parts.add(new Part(in.getString(), in.getBytes()));
        }
        return new MachineState(platform, vcpus, parts);
    }

    /** Throws unless {@code names} are this state's parts, in order: the same machine configuration. */
    void checkParts(List<String> names, String machine) {
        if (!partNames().equals(names)) {
            throw new SnapshotException("the snapshot's devices " + partNames() + " are not machine " + machine
                    + "'s " + names + ": restore it into a machine of the same configuration");
        }
    }
}

package dev.kindling.microvm;

import dev.kindling.boot.DirectBoot;
import dev.kindling.machine.MachineState;
import dev.kindling.snapshot.FileCopy;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.SnapshotFile;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * A snapshot on disk: {@value #STATE} (the configuration and the machine state, in a
 * {@link SnapshotFile} with its version and checksum), {@value #MEMORY} (guest memory, sparse: all-zero
 * pages are holes) and copies of the writable disks ({@code disk0.img}, ...).
 */
final class SnapshotDir {
    static final String STATE = "state", MEMORY = "memory";

    private SnapshotDir() {}

    /** Writes the paused {@code vm} to {@code dir}. */
    static void write(Microvm vm, MicrovmBuilder recipe, Path dir) {
        try {
            Files.createDirectories(dir);
            MachineState state = vm.machine().saveState();
            List<Path> disks = recipe.writableDisks();
            List<String> names = new ArrayList<>();
            for (int i = 0; i < disks.size(); i++) {
                String name = "disk" + i + ".img";
                Path tmp = dir.resolve(name + ".tmp");
                Files.deleteIfExists(tmp);
                FileCopy.copy(disks.get(i), tmp);
                Files.move(tmp, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                names.add(name);
            }
            Path memTmp = dir.resolve(MEMORY + ".tmp");
            Files.deleteIfExists(memTmp);
            try (Fd fd = Fd.adopt(Libc.open(memTmp.toString(), Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL, 0600),
                    "snapshot memory " + memTmp)) {
                vm.machine().memory().saveTo(fd);
                Libc.fsync(fd);
            }
            Files.move(memTmp, dir.resolve(MEMORY), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            StateWriter out = new StateWriter();
            recipe.writeRecipe(out, names);
            out.putString(vm.bootProtocol().name());
            out.putLong(vm.machine().memory().size());
            state.write(out);
            SnapshotFile.write(dir.resolve(STATE), Microvm.VERSION, out.toByteArray());
        } catch (IOException | SyscallException e) {
            throw new SnapshotException("cannot write the snapshot to " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Builds (not starts) the microVM {@code dir} holds, with {@code overrides}. */
    static Microvm restore(Path dir, SnapshotOverrides overrides) {
        StateReader in = new StateReader(SnapshotFile.read(dir.resolve(STATE), Microvm.VERSION), "snapshot " + dir);
        MicrovmBuilder recipe;
        DirectBoot.Protocol protocol;
        long memoryBytes;
        MachineState state;
        try {
            recipe = MicrovmBuilder.readRecipe(in, dir);
            protocol = DirectBoot.Protocol.valueOf(in.getString());
            memoryBytes = in.getLong();
            state = MachineState.read(in);
            in.expectEnd();
        } catch (IllegalArgumentException e) {
            throw in.bad(e.getMessage());
        }
        List<Path> disks = recipe.writableDisks();
        if (!overrides.disks().isEmpty()) {
            if (overrides.disks().size() != disks.size()) {
                throw new SnapshotException("the snapshot has " + disks.size() + " writable disk(s); the overrides name "
                        + overrides.disks().size());
            }
            disks = overrides.disks();
        }
        MicrovmBuilder b = recipe.forRestore(recipe.name(), disks, overrides.vsockCid(),
                overrides.vsockUdsPath() != null ? overrides.vsockUdsPath() : recipe.vsockUdsPath());
        b.serialInput(overrides.serialInput());
        b.serialOutput(overrides.serialOutput());
        Path memory = dir.resolve(MEMORY);
        try (Fd fd = Fd.adopt(Libc.open(memory.toString(), Libc.O_RDONLY), "snapshot memory " + memory)) {
            long size = Libc.fileSize(fd);
            if (size != memoryBytes) {
                throw new SnapshotException("the snapshot's memory file " + memory + " has " + size + " bytes, not the "
                        + memoryBytes + " of its guest's memory (truncated?)");
            }
            return b.restore(state, fd, protocol);
        } catch (SyscallException e) {
            throw new SnapshotException("cannot open the snapshot's memory file " + memory + ": " + e.getMessage(), e);
        }
    }
}

package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Finding, or failing to find and install, what a command needs from the host. */
class HostToolTest {
    @TempDir
    Path tmp;

    @Test
    void aMissingToolThatCannotBeInstalledIsOneLineNamingThePackage() throws Exception {
        // a search path without the tool and without apt-get: the install cannot even start
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        assertThatThrownBy(() -> HostTool.QEMU.require(empty.toString(), new PrintStream(progress, true, StandardCharsets.UTF_8)))
                .isInstanceOf(PrerequisiteException.class)
                .hasMessage("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
        assertThat(progress.toString(StandardCharsets.UTF_8)).isEmpty();
    }

    @Test
    void findsTheFirstExecutableOnTheSearchPath() throws Exception {
        Path a = Files.createDirectory(tmp.resolve("a"));
        Path b = Files.createDirectory(tmp.resolve("b"));
        Path c = Files.createDirectory(tmp.resolve("c"));
        Files.writeString(a.resolve("qemu-system-x86_64"), "not executable");
        Files.createDirectory(b.resolve("qemu-system-x86_64"));
        Path real = Files.writeString(c.resolve("qemu-system-x86_64"), "#!/bin/sh\n");
        Files.setPosixFilePermissions(real, PosixFilePermissions.fromString("rwxr-xr-x"));
        String path = a + "::" + b + ":" + c;
        assertThat(HostTool.QEMU.find(path)).contains(real);
        assertThat(HostTool.QEMU.require(path, System.err)).isEqualTo(real);
    }

    @Test
    void aGuestBuildThatFailsSaysWhyInOneLine() throws Exception {
        Path guests = Files.createDirectory(tmp.resolve("guests"));
        Files.writeString(guests.resolve("Makefile"), "all:\n\t@echo compiling\n\t@echo 'x.c:1:1: error: expected something' >&2; false\n");
        assertThatThrownBy(() -> Workspace.buildGuests(guests, System.err))
                .isInstanceOf(PrerequisiteException.class)
                .hasMessage("cannot build the test guests (make -C guests): x.c:1:1: error: expected something");
    }
}

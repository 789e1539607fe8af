package dev.kindling.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** The device-tree compiler, as an independent reader of the blobs Kindling writes. */
public final class Dtc {
    private Dtc() {
    }

    /** dtc's source form of {@code blob}; fails on any warning of dtc's checks. */
    public static String decompile(byte[] blob) throws Exception {
        Require.that(Require.onPath("dtc"), "dtc is not installed (Debian: device-tree-compiler)");
        Path f = Files.createTempFile("kindling-fdt-", ".dtb");
        try {
            Files.write(f, blob);
            Path out = Files.createTempFile("kindling-fdt-", ".dts");
            try {
                BoundedProcess.Result r = BoundedProcess.run(Duration.ofSeconds(30), "dtc", "-I", "dtb", "-O", "dts",
                        "-o", out.toString(), f.toString());
                assertThat(r.succeeded()).as("dtc: %s", r.describe()).isTrue();
                assertThat(r.output()).as("dtc's warnings").isEmpty();
                return Files.readString(out);
            } finally {
                Files.deleteIfExists(out);
            }
        } finally {
            Files.deleteIfExists(f);
        }
    }
}

package dev.kindling.testing;

import dev.kindling.sys.CLayouts;
import java.io.IOException;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.StructLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * Checks Java declarations of a kernel header against the header itself: a C program compiled
 * against it prints the size, alignment and member offsets of every {@link CLayouts} struct and the
 * value of every macro, and {@link #mismatches} lists where the two disagree. Skips (fails in strict
 * mode) without gcc or without the header.
 */
public final class HeaderCheck {
    private static final Duration PROCESS_LIMIT = Duration.ofSeconds(300);

    private final Map<String, String> java = new LinkedHashMap<>();
    private final Map<String, String> c;

    private HeaderCheck(Map<String, String> c) {
        this.c = c;
    }

    /** Compiles and runs the probe in {@code dir}, for {@code header} (e.g. {@code linux/kvm.h}). */
    public static HeaderCheck run(Path dir, String header, List<StructLayout> structs, Map<String, Long> macros)
            throws IOException, InterruptedException {
        Require.that(BoundedProcess.works(PROCESS_LIMIT, "gcc", "--version"), "gcc is not installed: needed for the header check");
        Files.createDirectories(dir);
        Path probe = dir.resolve("includes.c");
        Files.writeString(probe, "#include <" + header + ">\nint main(void) { return 0; }\n");
        Require.that(BoundedProcess.works(PROCESS_LIMIT, "gcc", "-fsyntax-only", probe.toString()),
                "gcc cannot include <" + header + "> (install linux-libc-dev): needed for the header check");

        Map<String, String> expected = new LinkedHashMap<>();
        StringBuilder src = new StringBuilder("#include <" + header + ">\n#include <stddef.h>\n#include <stdio.h>\n"
                + "int main(void) {\n");
        for (StructLayout s : structs) {
            String name = s.name().orElseThrow();
            src.append("    printf(\"%s %zu %zu\\n\", \"").append(name).append("\", sizeof(struct ").append(name)
                    .append("), _Alignof(struct ").append(name).append("));\n");
            expected.put(name, s.byteSize() + " " + s.byteAlignment());
            walk(name, "", s, 0, src, expected);
        }
        macros.forEach((macro, value) -> {
            src.append("    printf(\"%s %lld\\n\", \"").append(macro).append("\", (long long) (").append(macro).append("));\n");
            expected.put(macro, Long.toString(value));
        });
        src.append("    return 0;\n}\n");
        HeaderCheck check = new HeaderCheck(CProbe.printed(dir, "layout", src, "-std=gnu11", "-Wall"));
        check.java.putAll(expected);
        return check;
    }

    /**
     * Emits one line per named member: C path, offset and size. Anonymous unions add no path element;
     * flexible arrays have no size; elements of struct arrays are checked through element 0.
     */
    private static void walk(String struct, String path, GroupLayout group, long base, StringBuilder c,
            Map<String, String> expected) {
        long offset = base;
        for (MemoryLayout m : group.memberLayouts()) {
            long at = group instanceof StructLayout ? offset : base;
            if (!(m instanceof PaddingLayout)) {
                String name = m.name().orElseThrow(() -> new AssertionError("unnamed member in " + struct));
                if (name.startsWith(CLayouts.ANONYMOUS_PREFIX)) {
                    walk(struct, path, (GroupLayout) m, at, c, expected);
                } else {
                    String member = path.isEmpty() ? name : path + "." + name;
                    boolean flexible = m instanceof SequenceLayout seq && seq.elementCount() == 0;
                    String key = struct + "." + member;
                    c.append("    printf(\"%s %zu %lld\\n\", \"").append(key).append("\", offsetof(struct ")
                            .append(struct).append(", ").append(member).append("), (long long) ")
                            .append(flexible ? "-1" : "sizeof(((struct " + struct + " *) 0)->" + member + ")")
                            .append(");\n");
                    expected.put(key, at + " " + (flexible ? -1 : m.byteSize()));
                    if (m instanceof GroupLayout g) {
                        walk(struct, member, g, at, c, expected);
                    } else if (m instanceof SequenceLayout seq && seq.elementLayout() instanceof GroupLayout g) {
                        walk(struct, member + "[0]", g, at, c, expected);
                    }
                }
            }
            offset += m.byteSize();
        }
    }

    /** The Java side: structs and members (lower case) or macros (upper case). */
    public Map<String, String> declared(boolean macros) {
        return filter(java, macros);
    }

    /** One line per key whose Java and C values differ, e.g. {@code kvm_fpu.ftwx: java=133 1, C=132 1}. */
    public List<String> mismatches(boolean macros) {
        Map<String, String> j = filter(java, macros);
        Map<String, String> h = filter(c, macros);
        Set<String> keys = new TreeSet<>(j.keySet());
        keys.addAll(h.keySet());
        return keys.stream()
                .filter(k -> !Objects.equals(j.get(k), h.get(k)))
                .map(k -> k + ": java=" + j.get(k) + ", C=" + h.get(k))
                .toList();
    }

    private static Map<String, String> filter(Map<String, String> m, boolean macros) {
        Map<String, String> out = new LinkedHashMap<>();
        m.forEach((k, v) -> {
            if (Character.isUpperCase(k.charAt(0)) == macros) {
                out.put(k, v);
            }
        });
        return out;
    }
}

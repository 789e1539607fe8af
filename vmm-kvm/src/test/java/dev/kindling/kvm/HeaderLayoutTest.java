package dev.kindling.kvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.sys.Ioctl;
import dev.kindling.testing.BoundedProcess;
import dev.kindling.testing.CProbe;
import dev.kindling.testing.Require;
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
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Compiles a C program against the installed {@code <linux/kvm.h>} that prints the size, alignment and
 * member offsets of every layout in {@link KvmStructs}, plus every ioctl number, constant and capability
 * number, and checks the Java declarations against it.
 */
class HeaderLayoutTest {
    private static final Path DIR = Path.of("target", "kvm-header-check");
    private static final Duration PROCESS_LIMIT = Duration.ofSeconds(300);

    private static Map<String, String> cOutput;
    private static Map<String, String> expected;

    @BeforeAll
    static void compileAndRun() throws Exception {
        Require.that(BoundedProcess.works(PROCESS_LIMIT, "gcc", "--version"), "gcc is not installed: needed for the header check");
        Files.createDirectories(DIR);
        Path probe = DIR.resolve("probe.c");
        Files.writeString(probe, "#include <linux/kvm.h>\nint main(void) { return 0; }\n");
        Require.that(BoundedProcess.works(PROCESS_LIMIT, "gcc", "-fsyntax-only", probe.toString()),
                "gcc cannot include <linux/kvm.h> (install linux-libc-dev): needed for the header check");

        StringBuilder c = new StringBuilder("""
                #include <linux/kvm.h>
                #include <stddef.h>
                #include <stdio.h>
                int main(void) {
                """);
        expected = new LinkedHashMap<>();
        for (StructLayout s : KvmStructs.all()) {
            String name = s.name().orElseThrow();
            c.append("    printf(\"%s %zu %zu\\n\", \"").append(name).append("\", sizeof(struct ").append(name)
                    .append("), _Alignof(struct ").append(name).append("));\n");
            expected.put(name, s.byteSize() + " " + s.byteAlignment());
            walk(name, "", s, 0, c);
        }
        for (Ioctl ioctl : KvmIoctls.all()) {
            c.append("    printf(\"%s %llu\\n\", \"").append(ioctl.name()).append("\", (unsigned long long) (")
                    .append(ioctl.name()).append("));\n");
            expected.put(ioctl.name(), Long.toString(ioctl.number()));
        }
        for (Map.Entry<String, Long> e : KvmConstants.all().entrySet()) {
            constant(c, e.getKey(), e.getValue());
        }
        for (Capability cap : Capability.values()) {
            constant(c, cap.macro(), cap.number());
        }
        c.append("    return 0;\n}\n");

        cOutput = CProbe.printed(DIR, "kvm_layout", c, "-std=gnu11", "-Wall");
    }

    private static void constant(StringBuilder c, String macro, long value) {
        c.append("    printf(\"%s %lld\\n\", \"").append(macro).append("\", (long long) (").append(macro).append("));\n");
        expected.put(macro, Long.toString(value));
    }

    /**
     * Emits one line per named member: C path, offset and size. Anonymous unions add no path element;
     * flexible arrays have no size; elements of struct arrays are checked through element 0.
     */
    private static void walk(String struct, String path, GroupLayout group, long base, StringBuilder c) {
        long offset = base;
        for (MemoryLayout m : group.memberLayouts()) {
            long at = group instanceof StructLayout ? offset : base;
            if (!(m instanceof PaddingLayout)) {
                String name = m.name().orElseThrow(() -> new AssertionError("unnamed member in " + struct));
                if (name.startsWith(KvmStructs.ANONYMOUS_PREFIX)) {
                    walk(struct, path, (GroupLayout) m, at, c);
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
                        walk(struct, member, g, at, c);
                    } else if (m instanceof SequenceLayout seq && seq.elementLayout() instanceof GroupLayout g) {
                        walk(struct, member + "[0]", g, at, c);
                    }
                }
            }
            offset += m.byteSize();
        }
    }

    @Test
    void everyStructSizeAlignmentAndMemberMatchesTheHeader() {
        Map<String, String> javaStructs = filter(expected, false);
        assertThat(javaStructs).hasSizeGreaterThan(200);
        assertThat(mismatches(javaStructs, filter(cOutput, false))).isEmpty();
    }

    @Test
    void everyIoctlConstantAndCapabilityMatchesTheHeader() {
        Map<String, String> javaNumbers = filter(expected, true);
        assertThat(javaNumbers).containsKeys("KVM_RUN", "KVM_SET_USER_MEMORY_REGION", "KVM_CAP_SPLIT_IRQCHIP");
        assertThat(mismatches(javaNumbers, filter(cOutput, true))).isEmpty();
    }

    /** One line per key whose Java and C values differ, e.g. {@code kvm_fpu.ftwx: java=133 1, C=132 1}. */
    private static List<String> mismatches(Map<String, String> j, Map<String, String> c) {
        Set<String> keys = new TreeSet<>(j.keySet());
        keys.addAll(c.keySet());
        return keys.stream()
                .filter(k -> !Objects.equals(j.get(k), c.get(k)))
                .map(k -> k + ": java=" + j.get(k) + ", C=" + c.get(k))
                .toList();
    }

    /** Macros are upper case; struct names and members are lower case. */
    private static Map<String, String> filter(Map<String, String> m, boolean macros) {
        Map<String, String> out = new LinkedHashMap<>();
        m.forEach((k, v) -> {
            if (k.startsWith("KVM_") == macros) {
                out.put(k, v);
            }
        });
        return out;
    }
}

package dev.kindling.kvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.sys.Ioctl;
import dev.kindling.testing.HeaderCheck;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Checks every layout in {@link KvmStructs}, every ioctl number, constant and capability number
 * against the installed {@code <linux/kvm.h>}.
 */
class HeaderLayoutTest {
    private static HeaderCheck check;

    @BeforeAll
    static void compileAndRun() throws Exception {
        Map<String, Long> macros = new LinkedHashMap<>();
        for (Ioctl ioctl : KvmIoctls.all()) {
            macros.put(ioctl.name(), ioctl.number());
        }
        macros.putAll(KvmConstants.all());
        for (Capability cap : Capability.values()) {
            macros.put(cap.macro(), (long) cap.number());
        }
        check = HeaderCheck.run(Path.of("target", "kvm-header-check"), "linux/kvm.h", KvmStructs.all(), macros);
    }

    @Test
    void everyStructSizeAlignmentAndMemberMatchesTheHeader() {
        assertThat(check.declared(false)).hasSizeGreaterThan(200);
        assertThat(check.mismatches(false)).isEmpty();
    }

    @Test
    void everyIoctlConstantAndCapabilityMatchesTheHeader() {
        assertThat(check.declared(true)).containsKeys("KVM_RUN", "KVM_SET_USER_MEMORY_REGION", "KVM_CAP_SPLIT_IRQCHIP");
        assertThat(check.mismatches(true)).isEmpty();
    }
}

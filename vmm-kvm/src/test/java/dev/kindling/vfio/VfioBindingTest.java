package dev.kindling.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.kvm.Kvm;
import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.Vm;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.testing.HostResources;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The binding's calls where VFIO is missing or refuses: each fails with an error that names what is
 * missing, and leaves no descriptor open. On a host with VFIO the default container opens.
 */
class VfioBindingTest {
    @TempDir
    Path dir;

    @Test
    void aMissingContainerNodeSaysTheKernelHasNoVfio() {
        assertThatThrownBy(() -> VfioContainer.open(dir.resolve("vfio"))).isInstanceOf(VfioException.class)
                .hasMessageContaining(dir.resolve("vfio") + " does not exist: this kernel has no VFIO")
                .hasMessageContaining("vfio_iommu_type1");
    }

    @Test
    void theDefaultContainerOpensWhereVfioExistsAndIsNamedWhereNot() {
        HostResources before = HostResources.now();
        if (Files.exists(VfioContainer.DEFAULT_PATH)) {
            try (VfioContainer c = VfioContainer.open()) {
                assertThat(c.checkExtension(VfioConstants.TYPE1V2_IOMMU) || c.checkExtension(VfioConstants.NOIOMMU_IOMMU)
                        || c.checkExtension(VfioConstants.TYPE1_IOMMU)).as("some IOMMU type").isTrue();
            }
        } else {
            assertThatThrownBy(VfioContainer::open).isInstanceOf(VfioException.class)
                    .hasMessageStartingWith("/dev/vfio/vfio does not exist");
        }
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aNodeThatIsNotAContainerIsRefusedAndClosed() {
        HostResources before = HostResources.now();
        assertThatThrownBy(() -> VfioContainer.open(Path.of("/dev/null"))).isInstanceOf(VfioException.class)
                .hasMessageContaining("/dev/null is not a VFIO container")
                .hasMessageContaining("VFIO_GET_API_VERSION");
        HostResources.now().assertNothingLeftSince(before);
    }

    @Test
    void aMissingGroupAndADeviceWithoutGroupAreNamed() throws Exception {
        assertThatThrownBy(() -> VfioGroup.open(dir.resolve("7"), 7)).isInstanceOf(VfioException.class)
                .hasMessageContaining("IOMMU group 7 has no device bound to a VFIO driver");
        Path device = Files.createDirectory(dir.resolve("fff51000.ethernet"));
        assertThatThrownBy(() -> VfioGroup.groupOf(device)).isInstanceOf(VfioException.class)
                .hasMessageContaining(device + " has no IOMMU group");
        Files.createSymbolicLink(device.resolve("iommu_group"), Path.of("../../../kernel/iommu_groups/12"));
        assertThat(VfioGroup.groupOf(device)).isEqualTo(12);
    }

    @Test
    void kvmsVfioDeviceIsCreatedOrNamedAsMissingAndRefusesAFdThatIsNoGroup() {
        TestGuests.assumeKvm();
        HostResources before = HostResources.now();
        try (Kvm kvm = Kvm.open(); Vm vm = kvm.createVm()) {
            boolean present = vm.canCreateDevice(KvmConstants.DEV_TYPE_VFIO);
            System.out.println("[vfio test] KVM_DEV_TYPE_VFIO " + (present ? "present" : "absent") + " on this host");
            if (!present) {
                assertThatThrownBy(() -> KvmVfio.create(vm)).isInstanceOf(VfioException.class)
                        .hasMessageContaining("KVM_DEV_TYPE_VFIO");
            } else {
                try (KvmVfio device = KvmVfio.create(vm);
                     Fd notAGroup = Fd.adopt(Libc.open("/dev/null", Libc.O_RDWR), "/dev/null")) {
                    assertThatThrownBy(() -> device.groupAttr(KvmConstants.DEV_VFIO_GROUP_ADD, notAGroup, "add /dev/null"))
                            .isInstanceOf(VfioException.class).hasMessageContaining("KVM refused to add /dev/null");
                }
            }
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}

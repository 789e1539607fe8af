package dev.kindling.cli;

import dev.kindling.boot.BootException;
import dev.kindling.microvm.MicrovmException;
import dev.kindling.sandbox.SandboxException;
import dev.kindling.sys.SyscallException;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.List;

/**
 * The {@code kindling} command line: {@code probe}, {@code run}, {@code bench exits|boot|startup|blk|net|vsock|ivshmem|sandbox|snapshot},
 * {@code demo}, {@code image debian}, {@code example}, {@code ivshmem-server}. Exit status 64 for bad arguments (with the usage), 69 when something the command
 * needs from the host is missing, 1 for other failures.
 */
public final class Kindling {
    private static final String USAGE = """
            usage: kindling probe
                   kindling run --kernel PATH [--initrd PATH] [--cmdline STR] [--mem MIB] [--vcpus N]
                                [--pic on|off|auto] [--pit on|off|auto] [--rtc on|off|auto] [--isa-serial on|off]
                                [--irqchip split|kernel] [--disk PATH[,ro][,root]]... [--virtio-console] [--rng]
                                [--net tap=TAP[,mac=MAC] | passt[,socket=PATH][,mac=MAC] | switch=NAME[,mac=MAC]]...
                                [--vsock CID[,PATH]] [--ivshmem shm=PATH,size=SIZE | server=SOCKET[,msi=off]]...
                                [--pci on|off|auto] [--config FILE.json] [--timeout SECONDS] [--print-io-map]
                                [--vfio-platform host=NAME|sysfsdev=PATH,addr=ADDR,irq=GSI[,x-no-mmap=on][,mmap-timeout-ms=N]
                                                 [,x-irqfd=off]]... [--device-tree on|off|auto]
                                [--snapshot DIR --snapshot-on TEXT]
                   kindling run --restore DIR [--vsock CID[,PATH]] [--timeout SECONDS]
                                --snapshot  when the console first shows TEXT, write a snapshot to DIR and stop
                                --restore   start the microVM a snapshot in DIR holds, where it stopped
                                --net    a virtio-net interface (eth0, eth1, ... in the order given) on the tap TAP, on passt
                                         (started by kindling, or the one listening on socket=PATH) or on in-process switch NAME
                                --vsock  virtio-vsock for guest CID (3 to 4294967294); with PATH, Firecracker's Unix-socket
                                         protocol: a host client connects to PATH, sends "CONNECT <port>\\n" and gets
                                         "OK <host_port>\\n", then the stream; the guest's connections to port P reach PATH_P
                                --ivshmem  an ivshmem PCI device (QEMU's): BAR2 is the file PATH (made SIZE bytes if missing,
                                         e.g. /dev/shm/NAME, 4M), or the memory of the ivshmem server at SOCKET, whose
                                         peers ring its doorbells (MSI-X, or INTx with msi=off)
                                --pci    the PCI host bridge; auto: only with a PCI device
                                --vfio-platform  the host platform device NAME (/sys/bus/platform/devices/NAME) or at PATH, bound
                                         to vfio-platform: its regions from ADDR (in the MMIO hole), its interrupts from GSI
                                --device-tree  a device tree for the kernel naming the VFIO-platform devices (setup_data;
                                         the Linux 64-bit entry); auto: only with a VFIO-platform device
                   kindling bench exits [--iterations N] [--runs N]
                   kindling bench boot [--runs N]
                   kindling bench startup [--runs N]
                   kindling bench blk [--runs N] [--mib N] [--ops N]
                   kindling bench net [--runs N] [--kib N]
                   kindling bench vsock [--runs N] [--kib N] [--echoes N]
                   kindling bench ivshmem [--runs N] [--rounds N] [--kib N] [--no-vsock]
                   kindling bench sandbox [--runs N] [--execs N] [--cycles N] [--idle N]
                   kindling bench snapshot [--runs N] [--no-sandbox]
                   kindling ivshmem-server --socket PATH --size SIZE [--vectors N]
                                an ivshmem server (QEMU's protocol) for Kindling and QEMU VMs and host programs, until interrupted
                   kindling demo
                   kindling example boot-banner|sandbox-command|python-sandbox [IMAGE]|shared-memory
                   kindling image debian --out PATH [--packages PKG,...] [--size MIB]
                                a Debian 12 ext4 root image (debootstrap, cached) for Sandbox.builder().rootDisk(PATH)
                   kindling classpath
                                the library's class path: java --enable-native-access=ALL-UNNAMED -cp "$(./kindling classpath)" App.java""";

    private Kindling() {}

    public static void main(String[] args) {
        System.exit(run(List.of(args), System.in, System.out, System.err));
    }

    static int run(List<String> args, InputStream in, PrintStream out, PrintStream err) {
        if (args.isEmpty()) {
            err.println(USAGE);
            return 64;
        }
        List<String> rest = args.subList(1, args.size());
        try {
            return switch (args.getFirst()) {
                case "probe" -> Probe.run(rest, out, err);
                case "run" -> RunCommand.run(rest, in, out, err);
                case "bench" -> Bench.run(rest, out, err);
                case "demo" -> Demo.run(rest, in, out, err);
                case "image" -> ImageCommand.run(rest, out, err);
                case "ivshmem-server" -> IvshmemServerCommand.run(rest, out);
                case "example" -> ExampleCommand.run(rest, in, out, err);
                case "help", "--help", "-h" -> {
                    out.println(USAGE);
                    yield 0;
                }
                default -> throw new UsageException("unknown command '" + args.getFirst() + "'");
            };
        } catch (UsageException e) {
            err.println("kindling: " + e.getMessage());
            err.println(USAGE);
            return 64;
        } catch (PrerequisiteException e) {
            err.println("kindling: " + e.getMessage());
            return 69;
        } catch (MicrovmException | BootException | SyscallException | SandboxException | ChildProcess.Failure e) {
            err.println("kindling: " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            err.println("kindling: interrupted");
            return 130;
        } catch (Exception e) {
            err.println("kindling: " + e);
            e.printStackTrace(err);
            return 1;
        }
    }
}

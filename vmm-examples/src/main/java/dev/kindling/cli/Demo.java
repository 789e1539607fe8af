package dev.kindling.cli;

import java.io.InputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code kindling demo}: builds the test kernel once (cached), then boots it to a busybox shell on
 * this terminal, as {@code kindling run} does. Leaving the shell ({@code exit}) reboots the guest and
 * ends the demo; so does Ctrl-A x.
 */
final class Demo {
    private Demo() {}

    static int run(List<String> argv, InputStream in, PrintStream out, PrintStream err) throws Exception {
        if (!argv.isEmpty()) {
            throw new UsageException("demo takes no arguments");
        }
        Workspace.GuestKernel k = Workspace.kernel(err);
        err.println("kindling: booting " + k.vmlinux() + " (guest kernel code may run under KVM's instruction emulator here: allow 20-60 s)");
        List<String> run = new ArrayList<>(List.of("--kernel", k.vmlinux().toString(), "--initrd", k.initramfs().toString(),
                "--mem", "128", "--cmdline", k.cmdline() + " quiet kindling.action=shell"));
        return RunCommand.run(run, in, out, err);
    }
}

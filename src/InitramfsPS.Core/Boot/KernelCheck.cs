using System;
using System.Collections.Generic;
using System.Linq;
using InitramfsPS.Compression;
using InitramfsPS.Inspection;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Boot
{
    /// <summary>
    /// Whether a kernel can boot an archive: initrd support, the archive's decompressor, the image's
    /// architecture, devtmpfs for a generated /init; and what microVM hosts commonly need
    /// (virtio-mmio, vsock). A configuration that cannot be found is said, never passed silently.
    /// </summary>
    internal static class KernelCheck
    {
        /// <summary>
        /// Findings for booting <paramref name="rootfs"/> (as it will be archived, with its /init) with
        /// <paramref name="kernel"/>. <paramref name="compressions"/> are the archive's codecs (empty for
        /// a plain archive), null when not known yet (a rootfs not exported): then the kernel's
        /// decompressors are listed instead.
        /// </summary>
        public static List<Finding> Check(KernelImage kernel, Rootfs? rootfs, IReadOnlyCollection<InitramfsCompression>? compressions)
        {
            var findings = new List<Finding>();
            void Add(FindingSeverity severity, string id, string message) => findings.Add(new Finding(severity, id, kernel.Path, message));

            string? imageArchitecture = rootfs?.Image?.Platform.Architecture;
            if (imageArchitecture is not null)
            {
                if (kernel.Architecture is null)
                {
                    Add(FindingSeverity.Warning, "KernelArchitectureUnknown",
                        $"Cannot tell the architecture of {kernel.Path} (a {kernel.Format} file), so not whether it runs the image's {imageArchitecture} programs.");
                }
                else if (kernel.Architecture != imageArchitecture)
                {
                    Add(FindingSeverity.Error, "KernelArchitectureMismatch",
                        $"The kernel is {kernel.Architecture} and the image {rootfs!.Image!.Platform}: its programs cannot run on this kernel.");
                }
            }

            if (kernel.Config is null)
            {
                Add(FindingSeverity.Warning, "KernelConfigUnknown",
                    $"Cannot tell what {kernel.Path} supports (initrd, decompressors, devtmpfs, virtio-mmio): its configuration was {kernel.ConfigSource}.");
                return findings;
            }
            string from = $" ({kernel.ConfigSource})";

            if (!kernel.BuiltIn("CONFIG_BLK_DEV_INITRD"))
            {
                Add(FindingSeverity.Error, "KernelNoInitrd", "The kernel is built without CONFIG_BLK_DEV_INITRD: it cannot use an initramfs at all" + from + ".");
            }

            var decompressors = new[] { (Option: "CONFIG_RD_GZIP", Codec: InitramfsCompression.Gzip), (Option: "CONFIG_RD_ZSTD", Codec: InitramfsCompression.Zstd) };
            if (compressions is null)
            {
                var have = decompressors.Where(d => kernel.BuiltIn(d.Option)).Select(d => $"{d.Codec.ToString().ToLowerInvariant()} ({d.Option})").ToList();
                Add(FindingSeverity.Info, "KernelDecompressors", have.Count == 0
                    ? "The kernel unpacks only uncompressed archives (.cpio): it has neither CONFIG_RD_GZIP nor CONFIG_RD_ZSTD" + from + "."
                    : $"The kernel unpacks uncompressed archives and {string.Join(" and ", have)}" + from + ".");
            }
            else
            {
                foreach (var (option, codec) in decompressors.Where(d => compressions.Contains(d.Codec)))
                {
                    if (!kernel.BuiltIn(option))
                    {
                        Add(FindingSeverity.Error, "KernelDecompressorMissing",
                            $"The archive is {codec.ToString().ToLowerInvariant()}-compressed and the kernel has no {option}: it would not find /init in it{from}. Export it as {(codec == InitramfsCompression.Zstd && kernel.BuiltIn("CONFIG_RD_GZIP") ? ".cpio.gz" : ".cpio")}, or use a kernel built with {option}.");
                    }
                }
            }

            if (rootfs is not null && !kernel.BuiltIn("CONFIG_DEVTMPFS"))
            {
                if (Init.InitGenerator.ReadMarkers(rootfs).Program is not null)
                {
                    Add(FindingSeverity.Error, "KernelNoDevtmpfs",
                        "The generated /init mounts devtmpfs on /dev, and the kernel has no CONFIG_DEVTMPFS" + from + ": the workload would find no device nodes but those in the archive.");
                }
                else if (Init.RootfsLookup.ReadText(rootfs, "/init", 64 * 1024) is { } script && script.Contains("devtmpfs", StringComparison.Ordinal))
                {
                    Add(FindingSeverity.Warning, "KernelNoDevtmpfs", "/init mounts devtmpfs, and the kernel has no CONFIG_DEVTMPFS" + from + ".");
                }
            }

            Device(kernel, rootfs, findings, "CONFIG_VIRTIO_MMIO", "virtio_mmio", "KernelVirtioMmioMissing",
                "virtio-mmio, the bus of the devices of QEMU's microvm and of Firecracker (disks, network, vsock)");
            Device(kernel, rootfs, findings, "CONFIG_VIRTIO_VSOCKETS", "vmw_vsock_virtio_transport", "KernelVsockMissing",
                "virtio vsock, the socket agents use to talk to their host");
            return findings;
        }

        /// <summary>A device the kernel should have built in, or as a module the archive holds for it.</summary>
        private static void Device(KernelImage kernel, Rootfs? rootfs, List<Finding> findings, string option, string module, string id, string what)
        {
            string? value = kernel.Option(option);
            if (value == "y")
            {
                return;
            }
            if (value == "m" && rootfs is not null && kernel.Release is { } release && HasModule(rootfs, release, module))
            {
                return;
            }
            string state = value == "m"
                ? $"only as a module ({option}=m), and the archive has no {module}.ko under /lib/modules/{kernel.Release ?? "<release>"}"
                : $"not at all ({option} is not set)";
            findings.Add(new Finding(FindingSeverity.Warning, id, kernel.Path, $"The kernel has {what} {state} ({kernel.ConfigSource})."));
        }

        private static bool HasModule(Rootfs rootfs, string release, string module)
        {
            string directory = rootfs.Resolve($"/lib/modules/{release}")?.Path ?? $"/lib/modules/{release}";
            return rootfs.GetEntriesBelow(directory).Any(e => e.Type == EntryType.File
                && (e.Name == module + ".ko" || e.Name.StartsWith(module + ".ko.", StringComparison.Ordinal)));
        }
    }
}

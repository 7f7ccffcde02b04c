using System;
using System.Collections.Generic;
using System.Threading;
using InitramfsPS.Export;
using InitramfsPS.Images;
using InitramfsPS.Inspection;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS
{
    /// <summary>
    /// Builds an initramfs in a few calls: an image opened and expanded, files added, /init set or
    /// generated, paths removed, then exported. Each step changes the builder's own copy of the
    /// rootfs and returns the builder; a failure is an <see cref="Errors.InitramfsException"/>.
    /// </summary>
    /// <example>
    /// <code>
    /// var report = InitramfsBuilder.FromImage("oci:./layout:1")
    ///     .AddFile("./agent", "/usr/bin/agent")
    ///     .Remove("/usr/share/doc", recurse: true)
    ///     .Export("out.cpio.zst", new ExportOptions { Level = 19 });
    /// </code>
    /// </example>
    public sealed class InitramfsBuilder
    {
        private readonly List<string> warnings = new();

        private InitramfsBuilder(Rootfs rootfs) => Rootfs = rootfs;

        /// <summary>The rootfs as built so far (the builder's own; clone it to keep a state).</summary>
        public Rootfs Rootfs { get; }

        /// <summary>Warnings of the steps so far (a generated /init's workload not found, ...) and of the last export.</summary>
        public IReadOnlyList<string> Warnings => warnings;

        /// <summary>Opens an image (registry, <c>oci:</c> or <c>docker-archive:</c> reference) and expands it.</summary>
        /// <param name="reference">The image reference, as <see cref="Initramfs.OpenImage"/> takes it.</param>
        /// <param name="options">Platform, credentials, progress; null for the defaults.</param>
        /// <param name="cancellationToken">Stops the pull and expansion.</param>
        public static InitramfsBuilder FromImage(string reference, ImageOptions? options = null, CancellationToken cancellationToken = default)
        {
            using var cache = new InitramfsCache();
            var image = Initramfs.OpenImage(reference, options, cache, cancellationToken);
            return new InitramfsBuilder(Initramfs.Expand(image, cache, cancellationToken: cancellationToken));
        }

        /// <summary>Expands an image already opened.</summary>
        /// <param name="image">The image.</param>
        /// <param name="cancellationToken">Stops the expansion.</param>
        public static InitramfsBuilder FromImage(OciImage image, CancellationToken cancellationToken = default) =>
            new(Initramfs.Expand(image, cancellationToken: cancellationToken));

        /// <summary>Starts from a copy of <paramref name="rootfs"/> (copy-on-write: cheap, and the original never changes).</summary>
        /// <param name="rootfs">The rootfs.</param>
        public static InitramfsBuilder FromRootfs(Rootfs rootfs)
        {
            ArgumentNullException.ThrowIfNull(rootfs);
            return new InitramfsBuilder(rootfs.Clone());
        }

        /// <summary>Starts from an initramfs archive, read as the kernel unpacks it.</summary>
        /// <param name="path">The archive.</param>
        /// <param name="cancellationToken">Stops the import.</param>
        public static InitramfsBuilder FromArchive(string path, CancellationToken cancellationToken = default)
        {
            var result = Initramfs.Import(path, cancellationToken: cancellationToken);
            var builder = new InitramfsBuilder(result.Rootfs);
            builder.warnings.AddRange(result.Notes);
            return builder;
        }

        /// <summary>Adds a host file (or, with <see cref="AddFileOptions.Recurse"/>, a directory) at <paramref name="destination"/>.</summary>
        /// <param name="hostPath">The host file or directory.</param>
        /// <param name="destination">Where it goes; ending in '/' puts it inside that directory.</param>
        /// <param name="options">Mode, owner, recursion; null adds one file with mode 0755, owned by 0:0.</param>
        public InitramfsBuilder AddFile(string hostPath, string destination, AddFileOptions? options = null)
        {
            ArgumentNullException.ThrowIfNull(hostPath);
            Initramfs.AddFiles(Rootfs, new[] { System.IO.Path.GetFullPath(hostPath) }, destination, options);
            return this;
        }

        /// <summary>Sets /init to a script.</summary>
        /// <param name="content">The text of /init (CRLF becomes LF).</param>
        public InitramfsBuilder SetInit(string content)
        {
            Initramfs.SetInit(Rootfs, content);
            return this;
        }

        /// <summary>Sets /init to a host file, its bytes as they are.</summary>
        /// <param name="hostPath">The host file.</param>
        public InitramfsBuilder SetInitFromFile(string hostPath)
        {
            Initramfs.SetInitFromFile(Rootfs, hostPath);
            return this;
        }

        /// <summary>Sets /init to a generated script that runs the image's command (or <paramref name="command"/>) and powers the VM off when it exits.</summary>
        /// <param name="command">The workload's argv; null takes the image config's Entrypoint and Cmd.</param>
        /// <param name="hostname">The host name the script sets.</param>
        public InitramfsBuilder GenerateInit(IReadOnlyList<string>? command = null, string hostname = Initramfs.DefaultHostname)
        {
            warnings.AddRange(Initramfs.GenerateInit(Rootfs, command, hostname));
            return this;
        }

        /// <summary>Removes a path or the entries a pattern matches.</summary>
        /// <param name="pathOrPattern">A path or wildcard pattern inside the rootfs.</param>
        /// <param name="recurse">Remove a directory with everything below it.</param>
        public InitramfsBuilder Remove(string pathOrPattern, bool recurse = false)
        {
            ArgumentNullException.ThrowIfNull(pathOrPattern);
            Initramfs.Remove(Rootfs, new RemoveOptions { Paths = new[] { pathOrPattern }, Recurse = recurse });
            return this;
        }

        /// <summary>Removes what a usual trim names: Docs, ManPages, Locales, PackageCaches or PythonCache.</summary>
        /// <param name="preset">The preset's name.</param>
        public InitramfsBuilder RemovePreset(string preset)
        {
            ArgumentNullException.ThrowIfNull(preset);
            Initramfs.Remove(Rootfs, new RemoveOptions { Presets = new[] { preset } });
            return this;
        }

        /// <summary>Checks that the rootfs, as it would be exported, boots and starts its workload.</summary>
        /// <param name="options">A kernel and memory to check against; null for none.</param>
        /// <param name="cancellationToken">Stops the checks.</param>
        public IReadOnlyList<Finding> Test(TestOptions? options = null, CancellationToken cancellationToken = default) =>
            Initramfs.Test(Rootfs, options, cancellationToken);

        /// <summary>Writes the rootfs as an initramfs archive (see <see cref="Initramfs.Export"/>).</summary>
        /// <param name="path">The archive; <c>.cpio</c>, <c>.cpio.gz</c> or <c>.cpio.zst</c> picks the compression.</param>
        /// <param name="options">Compression, level and the rest; null for the defaults.</param>
        /// <param name="cancellationToken">Stops the export; no file is left.</param>
        public ExportReport Export(string path, ExportOptions? options = null, CancellationToken cancellationToken = default)
        {
            var report = Initramfs.Export(Rootfs, path, options, cancellationToken: cancellationToken);
            warnings.AddRange(report.Warnings);
            return report;
        }
    }
}

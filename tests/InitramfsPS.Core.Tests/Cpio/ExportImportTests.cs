using System;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Compression;
using InitramfsPS.Export;
using InitramfsPS.Import;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.Cpio
{
    /// <summary>A rootfs exported and imported again is the rootfs the export wrote.</summary>
    public sealed class ExportImportTests : IDisposable
    {
        private readonly string work = Directory.CreateTempSubdirectory("initramfsps-export-").FullName;

        public void Dispose() => Directory.Delete(work, recursive: true);

        private static RootfsEntry File(string path, string text, HardlinkGroup? group = null, long mtime = 1_000) => new()
        {
            Path = path, Type = EntryType.File, Mode = 0x1ED, MTime = mtime, Size = Encoding.UTF8.GetByteCount(text),
            Content = new InlineContent(Encoding.UTF8.GetBytes(text)), Hardlink = group, Source = "test",
        };

        private static Rootfs Sample(long mtime)
        {
            var rootfs = new Rootfs();
            var group = new HardlinkGroup();
            rootfs.Set(new RootfsEntry { Path = "/bin", Type = EntryType.Directory, Mode = 0x1ED, MTime = mtime, Source = "test" }, null);
            rootfs.Set(File("/bin/busybox", "#!/bin/busybox\n", group, mtime), null);
            rootfs.Set(File("/bin/sh", "#!/bin/busybox\n", group, mtime), null);
            rootfs.Set(new RootfsEntry { Path = "/init", Type = EntryType.Symlink, Mode = 0x1FF, LinkTarget = "bin/sh", MTime = mtime, Source = "test" }, null);
            rootfs.Set(File("/café-😀", "utf-8 name", mtime: 5), null);
            return rootfs;
        }

        [Theory]
        [InlineData(InitramfsCompression.None, 0)]
        [InlineData(InitramfsCompression.Gzip, 6)]
        [InlineData(InitramfsCompression.Zstd, 3)]
        public void An_exported_rootfs_imports_as_the_same_entries_with_mtimes_clamped(InitramfsCompression compression, int level)
        {
            string path = Path.Combine(work, $"initramfs.{compression}");
            var report = InitramfsExporter.Export(Sample(2_000_000_000), path, new ExportSettings
            {
                Compression = compression, Level = level, AddDefaultEntries = false, AllowUnbootable = true, ClampMTime = 1_000_000,
            }, CancellationToken.None);
            Assert.Equal(InitramfsExporter.CpioSize(Sample(0)), report.UncompressedSize);

            var imported = InitramfsImporter.Import(path, new BlobStore(Path.Combine(work, "cache")), new ImportOptions(), CancellationToken.None);
            Assert.Empty(imported.Notes);
            var rootfs = imported.Rootfs;
            Assert.Equal(new[] { "/", "/bin", "/bin/busybox", "/bin/sh", "/café-😀", "/init" }, rootfs.GetEntries().Select(e => e.Path));
            Assert.Same(rootfs.GetEntry("/bin/busybox")!.Hardlink, rootfs.GetEntry("/bin/sh")!.Hardlink);
            Assert.NotNull(rootfs.GetEntry("/bin/sh")!.Hardlink);
            Assert.Equal("bin/sh", rootfs.GetEntry("/init")!.LinkTarget);
            Assert.Equal(1_000_000, rootfs.GetEntry("/bin/sh")!.MTime);
            Assert.Equal(5, rootfs.GetEntry("/café-😀")!.MTime);
            using var reader = new ContentReader();
            var sh = rootfs.GetEntry("/bin/sh")!;
            Assert.Equal("#!/bin/busybox\n", Encoding.UTF8.GetString(reader.ReadPrefix(sh.Content!, (int)sh.Size)));
        }
    }
}

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.Api
{
    /// <summary>
    /// The public API as a C# program uses it: what a cmdlet refuses, the API refuses with the same
    /// id (a program cannot write zstd at level 0); the builder writes what the single operations
    /// write; progress and removal report as they go.
    /// </summary>
    public sealed class ApiTests : IDisposable
    {
        private readonly string work = Directory.CreateTempSubdirectory("initramfsps-api-").FullName;
        private readonly InitramfsCache cache;

        public ApiTests() => cache = new InitramfsCache(Path.Combine(work, "cache"));

        public void Dispose()
        {
            cache.Dispose();
            Directory.Delete(work, recursive: true);
        }

        private static Rootfs Sample()
        {
            var rootfs = new Rootfs();
            foreach (string dir in new[] { "/bin", "/usr", "/usr/share", "/usr/share/doc", "/usr/share/doc/pkg" })
            {
                rootfs.Set(new RootfsEntry { Path = dir, Type = EntryType.Directory, Mode = 0x1ED, MTime = 1_000, Source = "test" }, null);
            }
            rootfs.Set(File("/bin/sh", "#!/bin/sh\n"), null);
            rootfs.Set(File("/usr/share/doc/pkg/README", new string('x', 5000)), null);
            return rootfs;
        }

        private static RootfsEntry File(string path, string text) => new()
        {
            Path = path, Type = EntryType.File, Mode = 0x1ED, MTime = 1_000, Size = Encoding.UTF8.GetByteCount(text),
            Content = new InlineContent(Encoding.UTF8.GetBytes(text)), Source = "test",
        };

        [Theory]
        [InlineData(InitramfsCompression.Zstd, 0)]
        [InlineData(InitramfsCompression.Zstd, 20)]
        [InlineData(InitramfsCompression.Gzip, 10)]
        [InlineData(InitramfsCompression.Gzip, -1)]
        [InlineData(InitramfsCompression.None, 1)]
        public void A_level_outside_the_compression_s_range_is_refused_with_the_cmdlet_s_id_and_no_file_is_written(InitramfsCompression compression, int level)
        {
            string path = Path.Combine(work, "out.cpio");
            var options = new ExportOptions { Compression = compression, Level = level, AllowUnbootable = true };

            var planned = Assert.Throws<InitramfsException>(() => Initramfs.PlanExport(path, options));
            var exported = Assert.Throws<InitramfsException>(() => Initramfs.Export(Sample(), path, options, cache, TestContext.Current.CancellationToken));

            Assert.Equal("CompressionLevelInvalid", planned.ErrorId);
            Assert.Equal("CompressionLevelInvalid", exported.ErrorId);
            Assert.False(System.IO.File.Exists(path));
        }

        [Theory]
        [InlineData("a.cpio.zst", InitramfsCompression.Zstd, 3)]
        [InlineData("a.cpio.gz", InitramfsCompression.Gzip, 6)]
        [InlineData("a.cpio", InitramfsCompression.None, 0)]
        public void Without_options_the_file_name_picks_the_compression_and_its_default_level(string name, InitramfsCompression compression, int level)
        {
            var target = Initramfs.PlanExport(Path.Combine(work, name));

            Assert.Equal(compression, target.Compression);
            Assert.Equal(level, target.Level);
            Assert.Null(target.NameWarning);
        }

        [Fact]
        public void A_compression_the_file_name_contradicts_is_written_with_a_warning()
        {
            var target = Initramfs.PlanExport(Path.Combine(work, "a.cpio.gz"), new ExportOptions { Compression = InitramfsCompression.Zstd });

            Assert.Equal(InitramfsCompression.Zstd, target.Compression);
            Assert.NotNull(target.NameWarning);
        }

        [Fact]
        public void The_builder_writes_the_bytes_the_single_operations_write_and_leaves_its_source_alone()
        {
            var source = Sample();
            var options = new ExportOptions { AllowUnbootable = true, SourceDateEpoch = 2_000 };
            string built = Path.Combine(work, "built.cpio.zst"), direct = Path.Combine(work, "direct.cpio.zst");

            var report = InitramfsBuilder.FromRootfs(source)
                .SetInit("#!/bin/sh\r\necho hi\r\n")
                .RemovePreset("Docs")
                .Export(built, options, TestContext.Current.CancellationToken);

            var copy = source.Clone();
            Initramfs.SetInit(copy, "#!/bin/sh\necho hi\n");
            Initramfs.Remove(copy, new RemoveOptions { Presets = new[] { "Docs" } });
            Initramfs.Export(copy, direct, options, cache, TestContext.Current.CancellationToken);

            Assert.Equal(Convert.ToHexString(SHA256.HashData(System.IO.File.ReadAllBytes(direct))), Convert.ToHexString(SHA256.HashData(System.IO.File.ReadAllBytes(built))));
            Assert.Equal(report.Sha256, Convert.ToHexString(SHA256.HashData(System.IO.File.ReadAllBytes(built))), ignoreCase: true);
            Assert.Null(source.GetEntry("/init"));
            Assert.NotNull(source.GetEntry("/usr/share/doc/pkg/README"));
        }

        [Fact]
        public void Removal_goes_on_past_a_path_that_fails_and_a_declined_removal_trims_nothing_on_record()
        {
            var rootfs = Sample();
            var failed = new List<(string Path, string Id)>();

            var result = Initramfs.Remove(rootfs, new RemoveOptions
            {
                Paths = new[] { "/nope", "/usr/share/doc" },
                Recurse = true,
                PathFailed = (path, ex) => failed.Add((path, ex.ErrorId)),
            });

            Assert.Equal(new[] { ("/nope", "ItemNotFound") }, failed);
            Assert.Equal(3, result.Entries);
            Assert.Equal(5000, result.Bytes);
            Assert.Null(rootfs.GetEntry("/usr/share/doc"));
            Assert.Contains(result.Summary, rootfs.Changes);

            var other = Sample();
            var declined = Initramfs.Remove(other, new RemoveOptions { Paths = new[] { "/bin/sh" }, Approve = (_, _) => false });
            Assert.True(declined.Declined);
            Assert.NotNull(other.GetEntry("/bin/sh"));
            Assert.Empty(other.Changes);
        }

        [Fact]
        public void A_directory_with_entries_is_removed_only_when_asked_to_recurse()
        {
            var ex = Assert.Throws<InitramfsException>(() => Initramfs.Remove(Sample(), new RemoveOptions { Paths = new[] { "/usr/share/doc" } }));
            Assert.Equal("DirectoryNotEmpty", ex.ErrorId);
        }

        [Fact]
        public void Export_progress_arrives_through_IProgress_and_ends_with_every_byte_counted()
        {
            var seen = new List<long>();
            var progress = new Reporter(p => { lock (seen) { seen.Add(p.TotalBytes); } });
            string path = Path.Combine(work, "progress.cpio");

            var report = Initramfs.Export(Sample(), path, new ExportOptions { AllowUnbootable = true, Progress = progress }, cache, TestContext.Current.CancellationToken);

            Assert.NotEmpty(seen);
            Assert.Equal(report.UncompressedSize, seen[^1]);
        }

        [Fact]
        public void A_generated_init_without_an_image_config_or_a_command_is_refused()
        {
            var ex = Assert.Throws<InitramfsException>(() => Initramfs.GenerateInit(Sample()));
            Assert.Equal("InitCommandMissing", ex.ErrorId);

            var warnings = Initramfs.GenerateInit(Sample(), new[] { "/bin/sh", "-c", "echo hi" });
            Assert.NotNull(warnings);
        }

        private sealed class Reporter : IProgress<ExportProgress>
        {
            private readonly Action<ExportProgress> report;

            public Reporter(Action<ExportProgress> report) => this.report = report;

            public void Report(ExportProgress value) => report(value);
        }
    }
}

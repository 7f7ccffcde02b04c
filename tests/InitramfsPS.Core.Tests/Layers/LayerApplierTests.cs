using System;
using System.Collections.Generic;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.Layers;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.Layers
{
    /// <summary>
    /// The layer rules (OCI image-spec "Applying changesets") and the hostile-layer table of
    /// tests/Pester/Hostile.Tests.ps1 at the engine level: each layer is refused with a stable id
    /// naming the layer, or confined inside the rootfs.
    /// </summary>
    public sealed class LayerApplierTests : IDisposable
    {
        private readonly LayerFixture fixture = new();

        public void Dispose() => fixture.Dispose();

        private static int Octal(string digits) => Convert.ToInt32(digits, 8);

        private static TarBuilder Init() => new TarBuilder().File("init", "#!/init\n", mode: Octal("755"));

        /// <summary>Layers that are refused, by name: each builds its layers (lower first) and names the id.</summary>
        private static readonly Dictionary<string, (string Id, Func<byte[][]> Layers)> Refusals = new()
        {
            ["a .. path climbing above the root"] = ("LayerEntryOutsideRoot", () => One(Init().File("../../outside/x", "escaped"))),
            ["a .. path climbing from inside"] = ("LayerEntryOutsideRoot", () => One(Init().File("a/../../outside/x", "escaped"))),
            ["a directory named .."] = ("LayerEntryOutsideRoot", () => One(Init().Directory("../"))),
            ["a symlink named .."] = ("LayerEntryOutsideRoot", () => One(Init().Symlink("..", "/"))),
            ["an absolute path that climbs"] = ("LayerEntryOutsideRoot", () => One(Init().File("/../etc/passwd", "x"))),
            ["a symlink to / and a file through it"] = ("LayerEntryThroughSymlink", () => One(Init().Symlink("evil", "/").File("evil/etc/passwd", "x"))),
            ["a symlink to ../../.. and a file through it"] = ("LayerEntryThroughSymlink", () => One(Init().Symlink("evil", "../../..").File("evil/outside/x", "x"))),
            ["a symlink and a directory through it"] = ("LayerEntryThroughSymlink", () => One(Init().Symlink("evil", "/tmp").Directory("evil/dir/"))),
            ["a symlink in a lower layer and a file through it in an upper one"] = ("LayerEntryThroughSymlink",
                () => new[] { Init().Symlink("evil", "/").Build(), new TarBuilder().File("evil/etc/passwd", "root::0:0::/:/bin/sh").Build() }),
            ["a symlink chain and a file through it"] = ("LayerEntryThroughSymlink", () => One(Init().Symlink("a", "b").Symlink("b", "../..").File("a/x", "x"))),
            ["a hardlink whose target climbs"] = ("LayerHardlinkOutsideRoot", () => One(Init().Hardlink("h", "../../outside/passwd"))),
            ["a hardlink to an absolute path not in the image"] = ("LayerHardlinkTargetMissing", () => One(Init().Hardlink("h", "/etc/passwd"))),
            ["a hardlink through a symlink"] = ("LayerHardlinkTargetMissing", () => One(Init().Symlink("evil", "/").Hardlink("h", "evil/init"))),
            ["a hardlink to a directory"] = ("LayerHardlinkToDirectory", () => One(Init().Directory("d/").Hardlink("h", "d"))),
            ["a hardlink to the root"] = ("LayerHardlinkToDirectory", () => One(Init().Hardlink("h", "/"))),
            ["a hardlink with an empty target"] = ("LayerEntryNameInvalid", () => One(Init().Hardlink("h", ""))),
            ["a whiteout of ."] = ("LayerWhiteoutInvalid", () => One(Init().Empty("etc/.wh.."))),
            ["a whiteout of .."] = ("LayerWhiteoutInvalid", () => One(Init().Empty("etc/.wh..."))),
            ["a whiteout of nothing"] = ("LayerWhiteoutInvalid", () => One(Init().Empty(".wh."))),
            ["a whiteout of a climbing path"] = ("LayerEntryOutsideRoot", () => One(Init().Empty("../.wh.outside"))),
            ["a whiteout of a climbing path from inside"] = ("LayerEntryOutsideRoot", () => One(Init().Empty("a/../../outside/.wh.x"))),
            ["an opaque whiteout above the root"] = ("LayerEntryOutsideRoot", () => One(Init().Empty("../.wh..wh..opq"))),
            ["a symlink named ."] = ("LayerEntryReplacesRoot", () => One(Init().Symlink(".", "/"))),
            ["a symlink named ./"] = ("LayerEntryReplacesRoot", () => One(Init().Symlink("./", "/tmp"))),
            ["a hardlink named . to a file"] = ("LayerEntryReplacesRoot", () => One(Init().Hardlink(".", "init"))),
            ["a NUL byte in a PAX path"] = ("LayerEntryNameInvalid", () => One(Init().Pax("path", "a\0/../../outside/x").File("x", "x"))),
            ["a NUL byte in a PAX linkpath"] = ("LayerEntryNameInvalid", () => One(Init().Pax("linkpath", "/etc\0passwd").Symlink("s", "x"))),
            ["a symlink with an empty target"] = ("LayerEntryNameInvalid", () => One(Init().Symlink("s", ""))),
            ["an empty name"] = ("LayerEntryNameInvalid", () => One(Init().File("", "x"))),
            ["a PAX path that climbs"] = ("LayerEntryOutsideRoot", () => One(Init().Pax("path", "../../outside/x").File("harmless", "x"))),
            ["a PAX linkpath that climbs (hardlink)"] = ("LayerHardlinkOutsideRoot", () => One(Init().Pax("linkpath", "../../../outside/passwd").Hardlink("h", "init"))),
            ["a global PAX path that climbs"] = ("LayerEntryOutsideRoot", () => One(Init().Pax("path", "../../../outside/xyzw", global: true).File("victim", "x"))),
            ["a GNU long name that climbs"] = ("LayerEntryOutsideRoot", () => One(Init().GnuLong('L', "../../outside/x").File("victim", "x"))),
            ["a GNU long link that climbs (hardlink)"] = ("LayerHardlinkOutsideRoot", () => One(Init().GnuLong('K', "../../outside/passwd").Hardlink("h", "init"))),
            ["a PAX size of 0 smuggling a climbing header in the data"] = ("LayerEntryOutsideRoot",
                () => One(Init().Pax("size", "0").Add(new TarBuilder.Header { Name = "cover" }, new TarBuilder().File("../../outside/x", "smuggled").Build(endBlocks: false)))),
            ["an unknown entry type"] = ("LayerEntryTypeUnsupported", () => One(Init().Add(new TarBuilder.Header { Name = "z", Type = 'Z' }))),
            ["a file below a file"] = ("LayerParentNotDirectory", () => One(Init().File("f", "x").File("f/x", "y"))),
            ["a hardlink to nothing"] = ("LayerHardlinkTargetMissing", () => One(Init().Hardlink("a", "missing"))),
            ["a whiteout before the hardlink to the file it removes"] = ("LayerHardlinkTargetMissing",
                () => new[] { Init().File("f", "lower").Build(), new TarBuilder().Empty(".wh.f").Hardlink("h", "f").Build() }),
        };

        private static byte[][] One(TarBuilder layer) => new[] { layer.Build() };

        public static TheoryData<string> RefusalCases()
        {
            var data = new TheoryData<string>();
            foreach (string name in Refusals.Keys)
            {
                data.Add(name);
            }
            return data;
        }

        [Theory]
        [MemberData(nameof(RefusalCases))]
        public void A_hostile_layer_is_refused_with_a_stable_id_naming_the_layer(string name)
        {
            var (id, layers) = Refusals[name];
            var e = Assert.Throws<InitramfsException>(() => fixture.Expand(layers()));
            Assert.Equal(id, e.ErrorId);
            Assert.Matches("^layer [12]: ", e.Message);
            Assert.DoesNotMatch("[\\x00-\\x08\\x0b-\\x1f]", e.Message);
        }

        [Fact]
        public void Absolute_and_dotted_paths_are_confined_to_the_root()
        {
            var r = fixture.Expand(new TarBuilder().Directory("./").Directory("/etc/").File("/etc/abs", "a").File("a/../b", "b").File("./etc/hostname", "vm").Build());
            Assert.Equal(new[] { "/", "/b", "/etc", "/etc/abs", "/etc/hostname" }, LayerFixture.Paths(r));
        }

        [Fact]
        public void Symlink_targets_are_data_kept_as_written()
        {
            var r = fixture.Expand(Init().Symlink("root", "/").Symlink("up", "../../..").Build());
            Assert.Equal(("/", "../../.."), (r.GetEntry("/root")!.LinkTarget, r.GetEntry("/up")!.LinkTarget));
        }

        [Fact]
        public void A_hardlink_to_a_symlink_links_the_symlink_never_its_target()
        {
            var r = fixture.Expand(Init().Symlink("s", "/etc/passwd").Hardlink("h", "s").Build());
            var h = r.GetEntry("/h")!;
            Assert.Equal((EntryType.Symlink, "/etc/passwd"), (h.Type, h.LinkTarget));
        }

        [Fact]
        public void A_hardlink_to_itself_is_skipped()
        {
            var r = fixture.Expand(Init().File("f", "x").Hardlink("f", "f").Build());
            Assert.Equal(1, r.GetEntry("/f")!.Size);
            Assert.Null(r.GetEntry("/f")!.Hardlink);
        }

        [Theory]
        [InlineData(false)]
        [InlineData(true)]
        public void A_directory_over_a_symlink_replaces_it(bool sameLayer)
        {
            var lower = Init().Symlink("d", "/tmp");
            var upper = (sameLayer ? lower : new TarBuilder()).Directory("d/").File("d/x", "inside");
            var r = sameLayer ? fixture.Expand(upper.Build()) : fixture.Expand(lower.Build(), upper.Build());
            Assert.Equal(EntryType.Directory, r.GetEntry("/d")!.Type);
            Assert.Equal(6, r.GetEntry("/d/x")!.Size);
        }

        [Fact]
        public void A_whiteout_through_a_symlink_deletes_nothing()
        {
            var r = fixture.Expand(
                Init().Directory("tmp/").File("tmp/x", "x").Symlink("evil", "/tmp").Build(),
                new TarBuilder().Empty("evil/.wh.x").Empty("evil/.wh..wh..opq").Build());
            Assert.Equal(EntryType.Symlink, r.GetEntry("/evil")!.Type);
            Assert.NotNull(r.GetEntry("/tmp/x"));
        }

        [Fact]
        public void An_old_style_entry_named_slash_sets_the_roots_metadata()
        {
            var r = fixture.Expand(Init().Add(new TarBuilder.Header { Name = "/", Mode = Octal("700") }).Build());
            Assert.Equal((EntryType.Directory, Octal("700")), (r.GetEntry("/")!.Type, r.GetEntry("/")!.Mode));
        }

        [Fact]
        public void Aufs_bookkeeping_entries_are_skipped()
        {
            var r = fixture.Expand(Init().File(".wh..wh..", "x").Directory(".wh..wh.plnk/").Build());
            Assert.Equal(new[] { "/", "/init" }, LayerFixture.Paths(r));
        }

        [Fact]
        public void File_data_is_read_at_its_offset_in_the_layer_after_extended_headers()
        {
            string long1 = new string('p', 180);
            var r = fixture.Expand(new TarBuilder()
                .Pax("path", long1).File("short", "first")
                .GnuLong('L', new string('q', 300)).File("x", "second")
                .File("plain", "third")
                .Build());
            Assert.Equal("first", Encoding.UTF8.GetString(LayerFixture.Read(r.GetEntry("/" + long1)!)));
            Assert.Equal("second", Encoding.UTF8.GetString(LayerFixture.Read(r.GetEntry("/" + new string('q', 300))!)));
            Assert.Equal("third", Encoding.UTF8.GetString(LayerFixture.Read(r.GetEntry("/plain")!)));
        }

        [Fact]
        public void A_PAX_size_of_zero_hiding_data_that_is_not_a_header_gives_an_empty_file()
        {
            var r = fixture.Expand(Init().Pax("size", "0").Add(new TarBuilder.Header { Name = "f" }, new byte[1024]).Build());
            Assert.Equal(0, r.GetEntry("/f")!.Size);
        }

        [Fact]
        public void Metadata_is_kept_setuid_sticky_owners_devices_fifos()
        {
            var r = fixture.Expand(new TarBuilder()
                .File("bin/su", "suid", mode: Octal("4755"))
                .File("bin/sg", "sgid", mode: Octal("2711"))
                .Directory("tmp/", mode: Octal("1777"))
                .File("home/user/notes", "hello", mode: Octal("640"), uid: 1000, gid: 1000, mtime: 1234567890)
                .Add(new TarBuilder.Header { Name = "dev/null", Type = '3', DevMajor = 1, DevMinor = 3, Mode = Octal("666") })
                .Add(new TarBuilder.Header { Name = "dev/loop0", Type = '4', DevMajor = 7, DevMinor = 0, Mode = Octal("660"), Gid = 6 })
                .Add(new TarBuilder.Header { Name = "run/pipe", Type = '6', Mode = Octal("600") })
                .Build());
            Assert.Equal("-rwsr-xr-x", r.GetEntry("/bin/su")!.ModeString);
            Assert.Equal("-rwx--s--x", r.GetEntry("/bin/sg")!.ModeString);
            Assert.Equal("drwxrwxrwt", r.GetEntry("/tmp")!.ModeString);
            var notes = r.GetEntry("/home/user/notes")!;
            Assert.Equal(("1000:1000", 1234567890L, "-rw-r-----"), (notes.Owner, notes.MTime, notes.ModeString));
            var devNull = r.GetEntry("/dev/null")!;
            Assert.Equal((EntryType.CharDevice, 1, 3), (devNull.Type, devNull.DevMajor, devNull.DevMinor));
            var loop = r.GetEntry("/dev/loop0")!;
            Assert.Equal((EntryType.BlockDevice, 7, 0, 6L), (loop.Type, loop.DevMajor, loop.DevMinor, loop.Gid));
            Assert.Equal("prw-------", r.GetEntry("/run/pipe")!.ModeString);
        }

        [Fact]
        public void Missing_parents_are_made_0755_root_owned_with_the_entrys_mtime()
        {
            var r = fixture.Expand(new TarBuilder().File("deep/er/file", "f", uid: 5, mtime: 99).Build());
            var dir = r.GetEntry("/deep/er")!;
            Assert.Equal((EntryType.Directory, "drwxr-xr-x", "0:0", 99L), (dir.Type, dir.ModeString, dir.Owner, dir.MTime));
        }

        [Fact]
        public void A_whiteout_deletes_a_lower_file_and_a_lower_subtree()
        {
            var r = fixture.Expand(
                new TarBuilder().Directory("etc/").File("etc/keep", "k").File("etc/gone", "g").Directory("opt/app/").File("opt/app/bin", "x").Build(),
                new TarBuilder().Empty("etc/.wh.gone").Empty("opt/.wh.app").Build());
            Assert.Equal(new[] { "/", "/etc", "/etc/keep", "/opt" }, LayerFixture.Paths(r));
        }

        [Theory]
        [InlineData(true)]
        [InlineData(false)]
        public void An_opaque_whiteout_hides_lower_content_and_keeps_its_own_layers_wherever_it_stands(bool before)
        {
            var upper = new TarBuilder();
            if (before)
            {
                upper.Empty("data/.wh..wh..opq").Directory("data/", Octal("700")).File("data/new", "n");
            }
            else
            {
                upper.Directory("data/", Octal("700")).File("data/new", "n").Empty("data/.wh..wh..opq");
            }
            var r = fixture.Expand(
                new TarBuilder().Directory("data/").File("data/old", "o").Directory("data/sub/").File("data/sub/deep", "d").Build(),
                upper.Build());
            Assert.Equal(new[] { "/", "/data", "/data/new" }, LayerFixture.Paths(r));
            Assert.Equal(Octal("700"), r.GetEntry("/data")!.Mode);
        }

        [Fact]
        public void A_whiteout_never_deletes_an_entry_of_its_own_layer()
        {
            var r = fixture.Expand(new TarBuilder().File("a", "lower").Build(), new TarBuilder().File("a", "upper!").Empty(".wh.a").Build());
            Assert.Equal("upper!", Encoding.UTF8.GetString(LayerFixture.Read(r.GetEntry("/a")!)));
        }

        [Fact]
        public void A_file_replaced_by_a_directory_and_a_directory_by_a_file()
        {
            var r = fixture.Expand(
                new TarBuilder().File("x", "file").Directory("y/").File("y/a", "a").Directory("y/b/").File("y/b/c", "c").Build(),
                new TarBuilder().Directory("x/").File("x/inner", "i").File("y", "now a file").Build());
            Assert.Equal(new[] { "/", "/x", "/x/inner", "/y" }, LayerFixture.Paths(r));
            Assert.Equal(EntryType.File, r.GetEntry("/y")!.Type);
            Assert.Equal(4, r.Count);
        }

        [Fact]
        public void A_hardlink_to_a_lower_file_shares_its_inode_and_content()
        {
            var r = fixture.Expand(
                new TarBuilder().File("usr/bin/perl", "perl-binary", mode: Octal("755")).Build(),
                new TarBuilder().Hardlink("usr/bin/perl5.36", "/usr/bin/perl").Build());
            var a = r.GetEntry("/usr/bin/perl")!;
            var b = r.GetEntry("/usr/bin/perl5.36")!;
            Assert.NotNull(a.Hardlink);
            Assert.Same(a.Hardlink, b.Hardlink);
            Assert.Equal((EntryType.File, 11L, Octal("755")), (b.Type, b.Size, b.Mode));
            Assert.Equal("perl-binary", Encoding.UTF8.GetString(LayerFixture.Read(b)));
            Assert.Equal(11, r.Size);
        }

        public static TheoryData<string> LinkBeforeWhiteout => new() { "d/.wh.f", ".wh.d", "d/.wh..wh..opq" };

        [Theory]
        [MemberData(nameof(LinkBeforeWhiteout))]
        public void A_hardlink_before_its_targets_whiteout_keeps_the_lower_file_under_its_name(string whiteout)
        {
            var r = fixture.Expand(
                Init().Directory("d/").File("d/f", "lower", mode: Octal("750"), uid: 7).Hardlink("d/g", "d/f").Build(),
                new TarBuilder().Hardlink("h", "d/f").Empty(whiteout).Build());
            Assert.Null(r.GetEntry("/d/f"));
            var h = r.GetEntry("/h")!;
            Assert.Equal((EntryType.File, 5L, 7L), (h.Type, h.Size, h.Uid));
            Assert.Equal("lower", Encoding.UTF8.GetString(LayerFixture.Read(h)));
            if (whiteout == "d/.wh.f")
            {
                Assert.Same(r.GetEntry("/d/g")!.Hardlink, h.Hardlink);
            }
        }

        [Fact]
        public void A_name_of_4095_bytes_is_taken_and_4096_refused_for_names_link_targets_and_whiteouts()
        {
            string name = string.Concat(System.Linq.Enumerable.Repeat(new string('d', 200) + "/", 19)) + new string('f', 276);
            Assert.Equal(4095, Encoding.UTF8.GetByteCount(name));
            var r = fixture.Expand(Init().Pax("path", "./" + name).File("x", "deep").Build());
            Assert.Equal(4, r.GetEntry("/" + name)!.Size);

            foreach (var layer in new[]
            {
                Init().Pax("path", name + "g").File("x", "deep"),
                Init().Pax("linkpath", name + "g").Hardlink("h", "x"),
                Init().Pax("path", name + "/.wh.g").File("x", ""),
            })
            {
                var e = Assert.Throws<InitramfsException>(() => fixture.Expand(layer.Build()));
                Assert.Equal("LayerEntryNameTooLong", e.ErrorId);
                Assert.Equal(FailureKind.LimitExceeded, e.Kind);
            }
        }

        [Fact]
        public void A_name_past_PATH_MAX_is_refused_as_it_is_parsed_with_a_shortened_name()
        {
            string deep = string.Join('/', System.Linq.Enumerable.Repeat("a", 16000)) + "/";
            // Refused by Classify itself: nothing of it reaches a rootfs.
            var e = Assert.Throws<InitramfsException>(() => fixture.Parse(Init().Pax("path", deep).Directory("x").Build()));
            Assert.Equal("LayerEntryNameTooLong", e.ErrorId);
            Assert.True(e.Message.Length < 600, e.Message);
        }

        [Fact]
        public void The_entry_cap_stops_the_parse_before_the_records_past_it_are_read()
        {
            var builder = new TarBuilder();
            for (int i = 0; i < 150; i++)
            {
                builder.File($"f{i}", string.Empty);
            }
            // A corrupt header past the cap is never reached.
            builder.Add(new TarBuilder.Header { Name = "broken", Checksum = 1 });
            var e = Assert.Throws<InitramfsException>(() => fixture.Parse(builder.Build(), maxEntries: 100));
            Assert.Equal("TooManyEntries", e.ErrorId);
        }

        [Fact]
        public void The_entry_cap_of_the_rootfs_counts_the_directories_a_layer_makes()
        {
            var layer = fixture.Parse(new TarBuilder().File("a/b/c/d/e/f", "x").Build());
            Assert.Single(layer.Entries);
            var e = Assert.Throws<InitramfsException>(() => LayerApplier.Apply(new Rootfs(), layer, "layer 1", maxEntries: 5));
            Assert.Equal("TooManyEntries", e.ErrorId);
            var r = new Rootfs();
            LayerApplier.Apply(r, layer, "layer 1", maxEntries: 7);
            Assert.Equal(7, r.Count);
        }

        [Fact]
        public void Whiteouts_and_opaque_markers_are_recorded_with_their_place_in_the_tar_not_as_entries()
        {
            var layer = fixture.Parse(new TarBuilder().File("a", "1").Empty("d/.wh..wh..opq").File("b", "2").Empty("d/.wh.x").Build());
            Assert.Equal(new[] { "/a", "/b" }, layer.Entries.ConvertAll(e => e.Path));
            Assert.Equal(new[] { "/d" }, layer.OpaqueDirectories);
            Assert.Equal(new[] { 1 }, layer.OpaquePositions);
            Assert.Equal(new[] { "/d/x" }, layer.Whiteouts);
            Assert.Equal(new[] { 2 }, layer.WhiteoutPositions);
        }
    }
}

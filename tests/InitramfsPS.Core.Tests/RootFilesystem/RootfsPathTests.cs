using System;
using System.Collections.Generic;
using System.Linq;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;
using Xunit;

namespace InitramfsPS.Core.Tests.RootFilesystem
{
    /// <summary>
    /// The hostile path table: lexical normalisation (RootfsPath) and the kernel-like walk of a
    /// rootfs (Rootfs.RealPath, Resolve): symlinks followed only inside the root, '..' never above
    /// it, and a bound on the links one path may follow.
    /// </summary>
    public class RootfsPathTests
    {
        [Theory]
        [InlineData("a", "/a")]
        [InlineData("./a", "/a")]
        [InlineData("a/", "/a")]
        [InlineData("a//b", "/a/b")]
        [InlineData("/a/./b/", "/a/b")]
        [InlineData("a/../b", "/b")]
        [InlineData("/etc/abs", "/etc/abs")]
        [InlineData("/a/../etc/passwd", "/etc/passwd")]
        [InlineData(".", "/")]
        [InlineData("./", "/")]
        [InlineData("/", "/")]
        [InlineData("a/b/../..", "/")]
        public void Normalize_makes_one_absolute_path_of_every_spelling(string raw, string expected)
        {
            Assert.Equal(expected, RootfsPath.Normalize(raw));
        }

        [Theory]
        [InlineData("..", "PathOutsideRoot", FailureKind.Security)]
        [InlineData("/..", "PathOutsideRoot", FailureKind.Security)]
        [InlineData("../../outside/x", "PathOutsideRoot", FailureKind.Security)]
        [InlineData("a/../../x", "PathOutsideRoot", FailureKind.Security)]
        [InlineData("/a/b/../../../etc", "PathOutsideRoot", FailureKind.Security)]
        [InlineData("", "PathInvalid", FailureKind.InvalidData)]
        [InlineData("a\0/../../x", "PathInvalid", FailureKind.InvalidData)]
        public void Normalize_refuses_a_climb_above_the_root_an_empty_path_and_a_NUL(string raw, string id, FailureKind kind)
        {
            var e = Assert.Throws<InitramfsException>(() => RootfsPath.Normalize(raw));
            Assert.Equal((id, kind), (e.ErrorId, e.Kind));
            Assert.DoesNotContain("\0", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Normalize_names_its_errors_with_the_callers_prefix()
        {
            Assert.Equal("RemoveOutsideRoot", Assert.Throws<InitramfsException>(() => RootfsPath.Normalize("../x", "Remove")).ErrorId);
        }

        [Theory]
        [InlineData("../../etc/passwd", "/etc/passwd")]
        [InlineData("/a/../../b", "/b")]
        [InlineData("..", "/")]
        [InlineData("a/./b//..", "/a")]
        public void Confine_keeps_a_dotdot_at_the_root_at_the_root(string raw, string expected)
        {
            Assert.Equal(expected, RootfsPath.Confine(raw));
        }

        [Fact]
        public void Parent_name_combine_split_and_archive_name_agree()
        {
            Assert.Equal(("/usr/bin", "env"), (RootfsPath.Parent("/usr/bin/env"), RootfsPath.Name("/usr/bin/env")));
            Assert.Equal(("/", "/", string.Empty), (RootfsPath.Parent("/etc"), RootfsPath.Parent("/"), RootfsPath.Name("/")));
            Assert.Equal(("/x", "/a/x"), (RootfsPath.Combine("/", "x"), RootfsPath.Combine("/a", "x")));
            Assert.Equal(new[] { "a", "b" }, RootfsPath.Split("/a/b"));
            Assert.Empty(RootfsPath.Split("/"));
            Assert.Equal((".", "usr/bin"), (RootfsPath.ArchiveName("/"), RootfsPath.ArchiveName("/usr/bin")));
        }

        [Fact]
        public void PATH_MAX_counts_the_NUL()
        {
            Assert.True(RootfsPath.FitsPathMax(4095));
            Assert.False(RootfsPath.FitsPathMax(4096));
        }

        [Fact]
        public void Archive_order_puts_a_directory_before_its_contents_and_sorts_by_UTF8_bytes()
        {
            string[] paths = { "/a-b", "/a/b", "/a", "/\uFF5E", "/\U0001F600", "/B", "/b" };
            var sorted = paths.OrderBy(p => p, Comparer<string>.Create(RootfsPath.CompareArchiveOrder)).ToArray();
            // '/' sorts before every other byte; U+FF5E (EF BD 9E) before U+1F600 (F0 ...), although
            // UTF-16 code units order them the other way.
            Assert.Equal(new[] { "/B", "/a", "/a/b", "/a-b", "/b", "/\uFF5E", "/\U0001F600" }, sorted);
        }

        [Fact]
        public void Printable_escapes_control_characters_and_shortens_long_names()
        {
            Assert.Equal("a\\x1b[2Jb\\x0a", RootfsPath.Printable("a\u001b[2Jb\n"));
            string shortened = RootfsPath.Printable(new string('x', 1000));
            Assert.Equal(301, shortened.Length);
            Assert.EndsWith("…", shortened, StringComparison.Ordinal);
        }

        private static Rootfs Tree()
        {
            var r = new Rootfs();
            void Dir(string p) => r.Set(new RootfsEntry { Path = p, Type = EntryType.Directory, Mode = 493 }, r.GetEntry("/"));
            void Link(string p, string target) => r.Set(new RootfsEntry { Path = p, Type = EntryType.Symlink, LinkTarget = target }, null);
            void File(string p) => r.Set(new RootfsEntry { Path = p, Type = EntryType.File, Mode = 420 }, null);
            Dir("/usr");
            Dir("/usr/bin");
            Dir("/usr/lib");
            Dir("/opt");
            Dir("/opt/conf");
            Dir("/etc");
            File("/usr/bin/env");
            File("/usr/lib/libc.so.6");
            Link("/bin", "usr/bin");
            Link("/lib", "/usr/lib");
            Link("/etc/alt", "/opt/conf");
            Link("/up", "../../..");
            Link("/escape", "../../../../etc");
            Link("/usr/lib/libc.so", "libc.so.6");
            Link("/usr/lib/chain", "/lib/libc.so");
            Link("/dangling", "/nowhere");
            Link("/loop1", "loop2");
            Link("/loop2", "loop1");
            return r;
        }

        [Theory]
        [InlineData("/bin/env", false, "/usr/bin/env")]
        [InlineData("bin/env", false, "/usr/bin/env")]
        [InlineData("/bin/new-file", false, "/usr/bin/new-file")]       // missing components kept, under the real parent
        [InlineData("/bin", false, "/bin")]                             // the last component is the name itself (lstat)
        [InlineData("/bin", true, "/usr/bin")]
        [InlineData("/bin/", false, "/usr/bin")]                        // a trailing '/' follows it
        [InlineData("/etc/alt/x", false, "/opt/conf/x")]                // an absolute target starts at the rootfs's root
        [InlineData("/lib/../x", false, "/usr/x")]                      // '..' after a link leaves the link's target
        [InlineData("/up/etc/passwd", false, "/etc/passwd")]            // a link's '..' never climbs above the root
        [InlineData("/escape/passwd", false, "/etc/passwd")]
        [InlineData("/usr/lib/chain", true, "/usr/lib/libc.so.6")]      // links in links
        [InlineData("/dangling", true, "/nowhere")]
        public void RealPath_follows_links_in_parents_inside_the_root_only(string path, bool followLast, string expected)
        {
            Assert.Equal(expected, Tree().RealPath(path, followLast));
        }

        [Theory]
        [InlineData("../x", "PathOutsideRoot")]
        [InlineData("/usr/../../x", "PathOutsideRoot")]
        [InlineData("", "PathInvalid")]
        [InlineData("a\0b", "PathInvalid")]
        public void RealPath_refuses_a_typed_path_that_climbs_or_is_invalid(string path, string id)
        {
            Assert.Equal(id, Assert.Throws<InitramfsException>(() => Tree().RealPath(path)).ErrorId);
        }

        [Fact]
        public void A_link_loop_is_SymlinkLoop_for_RealPath_and_nothing_for_Resolve()
        {
            var tree = Tree();
            Assert.Equal("SymlinkLoop", Assert.Throws<InitramfsException>(() => tree.RealPath("/loop1", followLast: true)).ErrorId);
            Assert.Equal("SymlinkLoop", Assert.Throws<InitramfsException>(() => tree.RealPath("/loop1/x")).ErrorId);
            Assert.Null(tree.Resolve("/loop1"));
            Assert.Equal("/loop1", tree.RealPath("/loop1"));
        }

        [Theory]
        [InlineData(40, true)]
        [InlineData(41, false)]
        public void At_most_40_links_are_followed_in_one_path(int links, bool resolves)
        {
            var r = new Rootfs();
            r.Set(new RootfsEntry { Path = "/target", Type = EntryType.File }, null);
            for (int i = 1; i <= links; i++)
            {
                r.Set(new RootfsEntry { Path = $"/l{i}", Type = EntryType.Symlink, LinkTarget = i == links ? "target" : $"l{i + 1}" }, null);
            }
            if (resolves)
            {
                Assert.Equal("/target", r.RealPath("/l1", followLast: true));
                Assert.Equal("/target", r.Resolve("/l1")!.Path);
            }
            else
            {
                Assert.Equal("SymlinkLoop", Assert.Throws<InitramfsException>(() => r.RealPath("/l1", followLast: true)).ErrorId);
                Assert.Null(r.Resolve("/l1"));
            }
        }

        [Fact]
        public void Resolve_gives_the_final_entry_or_nothing_for_a_dangling_link()
        {
            var tree = Tree();
            Assert.Equal("/usr/lib/libc.so.6", tree.Resolve("/lib/libc.so")!.Path);
            Assert.Equal("/usr/bin/env", tree.GetRealEntry("/bin/env")!.Path);
            Assert.Null(tree.Resolve("/dangling"));
            Assert.Null(tree.Resolve(""));
        }

        [Fact]
        public void Setting_an_entry_never_follows_a_symlink_in_its_parents()
        {
            var tree = Tree();
            var through = Assert.Throws<InitramfsException>(() => tree.Set(new RootfsEntry { Path = "/bin/x", Type = EntryType.File }, tree.GetEntry("/")));
            Assert.Equal(("ParentIsSymlink", FailureKind.Security), (through.ErrorId, through.Kind));
            Assert.Null(tree.GetEntry("/usr/bin/x"));
            Assert.Equal("ParentNotDirectory", Assert.Throws<InitramfsException>(() => tree.Set(new RootfsEntry { Path = "/usr/bin/env/x", Type = EntryType.File }, null)).ErrorId);
            Assert.Equal("ParentMissing", Assert.Throws<InitramfsException>(() => tree.Set(new RootfsEntry { Path = "/new/x", Type = EntryType.File }, null)).ErrorId);
            Assert.Equal("RootNotDirectory", Assert.Throws<InitramfsException>(() => tree.Set(new RootfsEntry { Path = "/", Type = EntryType.Symlink, LinkTarget = "/x" }, null)).ErrorId);
            Assert.Equal("RootNotRemovable", Assert.Throws<InitramfsException>(() => tree.Remove("/")).ErrorId);
        }

        [Fact]
        public void GetEntry_never_follows_links()
        {
            var tree = Tree();
            Assert.Equal(EntryType.Symlink, tree.GetEntry("/bin")!.Type);
            Assert.Null(tree.GetEntry("/bin/env"));
            Assert.Throws<InitramfsException>(() => tree.GetEntry("/../etc"));
        }
    }
}

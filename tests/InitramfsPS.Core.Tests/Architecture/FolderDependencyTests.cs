using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using InitramfsPS.Errors;
using Xunit;

namespace InitramfsPS.Core.Tests.Architecture
{
    /// <summary>
    /// The engine's folders use one another only along the arrows of docs/architecture.md, and
    /// never in a cycle: what a maintainer would notice failing is a change that ties two folders
    /// together so that neither can be understood, tested or moved without the other.
    /// </summary>
    public class FolderDependencyTests
    {
        /// <summary>
        /// Uses that break the arrows today and are being removed on other branches of issue 15.
        /// Each is allowed only while it still occurs: once its branch is merged, the test says to
        /// take it off this list, which must end empty.
        /// </summary>
        private static readonly (string From, string To, string Why)[] Pending = Array.Empty<(string, string, string)>();

        private static readonly Lazy<IReadOnlyList<TypeUse>> Uses =
            new(() => TypeReferenceReader.Read(typeof(InitramfsException).Assembly.Location));

        private static FolderGraph Code => FolderGraph.FromUses(Uses.Value);

        private static FolderGraph Document => FolderGraph.FromArrows(ArchitectureDocument.Arrows(File.ReadAllText(ArchitectureDocument.Path)));

        [Fact]
        public void The_arrows_in_docs_architecture_md_go_one_way()
        {
            IReadOnlyList<IReadOnlyList<FolderEdge>> cycles = Document.Cycles();
            Assert.True(cycles.Count == 0,
                "docs/architecture.md draws a cycle: " + string.Join("; ", cycles.Select(c => string.Join(", ", c))));
        }

        [Fact]
        public void No_two_folders_of_the_engine_use_each_other_even_through_others()
        {
            IReadOnlyList<IReadOnlyList<FolderEdge>> cycles = Code.Without(Pending.Select(p => (p.From, p.To))).Cycles();
            Assert.True(cycles.Count == 0,
                "The engine's folders use each other in a cycle:\n"
                + string.Join("\n", cycles.Select(c => string.Join("\n", c.Select(e => FolderGraph.Describe(e))))));
        }

        [Fact]
        public void Every_folder_uses_only_the_folders_its_arrows_in_docs_architecture_md_reach()
        {
            FolderGraph code = Code;
            FolderGraph document = Document;
            var pending = new HashSet<(string, string)>(Pending.Select(p => (p.From, p.To)));
            var problems = new List<string>();

            IEnumerable<string> drawn = document.Edges.SelectMany(e => new[] { e.From, e.To });
            foreach (string part in code.Edges.SelectMany(e => new[] { e.From, e.To }).Distinct().Except(drawn).OrderBy(p => p, StringComparer.Ordinal))
            {
                problems.Add($"  The folder {part} is not in the picture: give it its arrows in docs/architecture.md.");
            }
            foreach (FolderEdge edge in code.Edges)
            {
                if (!document.Reaches(edge.From, edge.To) && !pending.Contains((edge.From, edge.To)))
                {
                    problems.Add(FolderGraph.Describe(edge) + "\n    is not allowed by the arrows of docs/architecture.md.");
                }
            }
            foreach ((string from, string to, string why) in Pending)
            {
                if (!code.Has(from, to))
                {
                    problems.Add($"  {from} -> {to} ({why}) is gone: take it off FolderDependencyTests.Pending.");
                }
                else if (document.Reaches(from, to))
                {
                    problems.Add($"  {from} -> {to} ({why}) is allowed by the arrows: take it off FolderDependencyTests.Pending.");
                }
            }
            Assert.True(problems.Count == 0, "Uses between the engine's folders:\n" + string.Join("\n", problems));
        }

        [Fact]
        public void The_checker_sees_uses_in_method_bodies_and_lambdas_and_finds_a_cycle()
        {
            // A use found only in IL: RootfsPath.Printable calls IO.Printable.Of and names IO nowhere else.
            Assert.Contains(Uses.Value, u => u.FromType == "InitramfsPS.RootFilesystem.RootfsPath"
                && u.Member == "InitramfsPS.RootFilesystem.RootfsPath.Printable" && u.ToType == "InitramfsPS.IO.Printable");
            // A use in a lambda's closure counts for the type that declares the lambda.
            Assert.Contains(Uses.Value, u => u.FromType == "InitramfsPS.Cache.CacheBudget"
                && u.Member.StartsWith("InitramfsPS.Cache.CacheBudget+<", StringComparison.Ordinal) && u.ToType == "InitramfsPS.Images.Digest");
            // A known arrow, with the member that makes it.
            FolderEdge? expansion = Code.Edge("Layers", "Cache");
            Assert.NotNull(expansion);
            Assert.Contains(expansion!.Uses, u => u.FromType == "InitramfsPS.Layers.ImageExpander" && u.ToType == "InitramfsPS.Cache.BlobStore");

            // A cycle through three parts is found, with its arrows, and the part beside it is not in it.
            FolderGraph tangled = FolderGraph.FromArrows(new[] { ("A", "B"), ("B", "C"), ("C", "A"), ("C", "D") });
            IReadOnlyList<FolderEdge> cycle = Assert.Single(tangled.Cycles());
            Assert.Equal(new[] { "A -> B", "B -> C", "C -> A" }, cycle.Select(e => e.ToString()));
            Assert.Empty(tangled.Without(new[] { ("C", "A") }).Cycles());
            Assert.True(tangled.Reaches("A", "D"));
            Assert.False(tangled.Without(new[] { ("C", "D") }).Reaches("A", "D"));
        }

        [Fact]
        public void The_arrows_are_read_one_a_line_and_a_malformed_arrow_is_refused()
        {
            const string markdown = "# x\n\n```mermaid\nflowchart TD\n    %% a comment -- with dashes\n    Api --> Export\n    Export --> Cpio\n```\n";
            Assert.Equal(new[] { ("Api", "Export"), ("Export", "Cpio") }, ArchitectureDocument.Arrows(markdown));
            Assert.Throws<InvalidDataException>(() => ArchitectureDocument.Arrows(markdown.Replace("Export --> Cpio", "Export --> Cpio & Boot", StringComparison.Ordinal)));
            Assert.Throws<InvalidDataException>(() => ArchitectureDocument.Arrows("no picture"));
        }
    }
}

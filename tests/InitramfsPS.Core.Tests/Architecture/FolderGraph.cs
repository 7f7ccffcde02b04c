using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace InitramfsPS.Core.Tests.Architecture
{
    /// <summary>An arrow between two parts of the engine, with the type uses that make it.</summary>
    internal sealed record FolderEdge(string From, string To, IReadOnlyList<TypeUse> Uses)
    {
        public override string ToString() => $"{From} -> {To}";
    }

    /// <summary>
    /// The engine's parts and the arrows between them. A type's part is its folder, read from its
    /// namespace: InitramfsPS.&lt;Folder&gt;[.*]; the root namespace InitramfsPS is the public
    /// API's part, named <see cref="ApiPart"/>. Types outside InitramfsPS (compiler-emitted
    /// helpers such as &lt;PrivateImplementationDetails&gt;) belong to no part.
    /// </summary>
    internal sealed class FolderGraph
    {
        public const string ApiPart = "Api";

        private readonly Dictionary<(string From, string To), FolderEdge> edges;

        private FolderGraph(Dictionary<(string, string), FolderEdge> edges) => this.edges = edges;

        public IEnumerable<FolderEdge> Edges => edges.Values.OrderBy(e => e.From, StringComparer.Ordinal).ThenBy(e => e.To, StringComparer.Ordinal);

        public static string? PartOf(string typeFullName)
        {
            int lastDot = typeFullName.LastIndexOf('.');
            string ns = lastDot < 0 ? "" : typeFullName.Substring(0, lastDot);
            if (ns == "InitramfsPS")
            {
                return ApiPart;
            }
            if (!ns.StartsWith("InitramfsPS.", StringComparison.Ordinal))
            {
                return null;
            }
            string rest = ns.Substring("InitramfsPS.".Length);
            int dot = rest.IndexOf('.');
            return dot < 0 ? rest : rest.Substring(0, dot);
        }

        public static FolderGraph FromUses(IEnumerable<TypeUse> uses)
        {
            var byEdge = new Dictionary<(string, string), List<TypeUse>>();
            foreach (TypeUse use in uses)
            {
                string? from = PartOf(use.FromType);
                string? to = PartOf(use.ToType);
                if (from is null || to is null || from == to)
                {
                    continue;
                }
                if (!byEdge.TryGetValue((from, to), out List<TypeUse>? list))
                {
                    byEdge[(from, to)] = list = new List<TypeUse>();
                }
                list.Add(use);
            }
            return new FolderGraph(byEdge.ToDictionary(kv => kv.Key, kv => new FolderEdge(kv.Key.Item1, kv.Key.Item2, kv.Value)));
        }

        public static FolderGraph FromArrows(IEnumerable<(string From, string To)> arrows) =>
            new(arrows.Distinct().ToDictionary(a => a, a => new FolderEdge(a.From, a.To, Array.Empty<TypeUse>())));

        public bool Has(string from, string to) => edges.ContainsKey((from, to));

        public FolderEdge? Edge(string from, string to) => edges.TryGetValue((from, to), out FolderEdge? e) ? e : null;

        /// <summary>A graph without the given arrows.</summary>
        public FolderGraph Without(IEnumerable<(string From, string To)> arrows)
        {
            var copy = new Dictionary<(string, string), FolderEdge>(edges);
            foreach ((string From, string To) arrow in arrows)
            {
                copy.Remove(arrow);
            }
            return new FolderGraph(copy);
        }

        /// <summary>
        /// The parts of each cycle (strongly connected component of more than one part), each
        /// with the arrows inside it; empty when the graph is acyclic.
        /// </summary>
        public IReadOnlyList<IReadOnlyList<FolderEdge>> Cycles()
        {
            // Tarjan's algorithm over the parts, in name order so that messages are stable.
            List<string> parts = edges.Keys.SelectMany(k => new[] { k.From, k.To }).Distinct().OrderBy(p => p, StringComparer.Ordinal).ToList();
            var index = new Dictionary<string, int>();
            var low = new Dictionary<string, int>();
            var stack = new Stack<string>();
            var onStack = new HashSet<string>();
            var components = new List<List<string>>();
            int next = 0;

            void Visit(string part)
            {
                index[part] = low[part] = next++;
                stack.Push(part);
                onStack.Add(part);
                foreach (string to in Targets(part))
                {
                    if (!index.ContainsKey(to))
                    {
                        Visit(to);
                        low[part] = Math.Min(low[part], low[to]);
                    }
                    else if (onStack.Contains(to))
                    {
                        low[part] = Math.Min(low[part], index[to]);
                    }
                }
                if (low[part] == index[part])
                {
                    var component = new List<string>();
                    string member;
                    do
                    {
                        member = stack.Pop();
                        onStack.Remove(member);
                        component.Add(member);
                    }
                    while (member != part);
                    if (component.Count > 1)
                    {
                        components.Add(component);
                    }
                }
            }

            foreach (string part in parts)
            {
                if (!index.ContainsKey(part))
                {
                    Visit(part);
                }
            }
            return components
                .Select(c => (IReadOnlyList<FolderEdge>)Edges.Where(e => c.Contains(e.From) && c.Contains(e.To)).ToList())
                .ToList();
        }

        /// <summary>Whether <paramref name="to"/> lies below <paramref name="from"/>: reachable along one or more arrows.</summary>
        public bool Reaches(string from, string to)
        {
            var seen = new HashSet<string> { from };
            var work = new Stack<string>();
            work.Push(from);
            while (work.Count > 0)
            {
                foreach (string next in Targets(work.Pop()))
                {
                    if (next == to)
                    {
                        return true;
                    }
                    if (seen.Add(next))
                    {
                        work.Push(next);
                    }
                }
            }
            return false;
        }

        private IEnumerable<string> Targets(string from) =>
            edges.Keys.Where(k => k.From == from).Select(k => k.To).OrderBy(t => t, StringComparer.Ordinal);

        /// <summary>Lists an edge's type uses, one a line, at most <paramref name="max"/>.</summary>
        public static string Describe(FolderEdge edge, int max = 10)
        {
            IEnumerable<string> lines = edge.Uses.Take(max).Select(u => $"    {u.Member} uses {u.ToType}");
            string more = edge.Uses.Count > max ? $"\n    … and {edge.Uses.Count - max} more" : "";
            return $"  {edge.From} -> {edge.To}:\n{string.Join("\n", lines)}{more}";
        }
    }

    /// <summary>
    /// The allowed arrows, read from the one mermaid graph in docs/architecture.md, which is also
    /// the picture there: so the document and this test cannot drift apart.
    /// </summary>
    internal static class ArchitectureDocument
    {
        private static readonly Regex Arrow = new(@"^\s*(\w+)\s*-->\s*(\w+)\s*$", RegexOptions.CultureInvariant);

        public static string Path
        {
            get
            {
                // The tests run from bin/<configuration>/<tfm>/; the repository root holds docs/.
                for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                {
                    string candidate = System.IO.Path.Combine(dir.FullName, "docs", "architecture.md");
                    if (File.Exists(candidate))
                    {
                        return candidate;
                    }
                }
                throw new FileNotFoundException("docs/architecture.md was not found above " + AppContext.BaseDirectory);
            }
        }

        /// <summary>The arrows `A --&gt; B` of the document's mermaid block.</summary>
        public static IReadOnlyList<(string From, string To)> Arrows(string markdown)
        {
            string[] lines = markdown.Replace("\r\n", "\n").Split('\n');
            var blocks = new List<List<string>>();
            List<string>? block = null;
            foreach (string line in lines)
            {
                if (block is null && line.Trim() == "```mermaid")
                {
                    block = new List<string>();
                }
                else if (block is not null && line.Trim() == "```")
                {
                    blocks.Add(block);
                    block = null;
                }
                else
                {
                    block?.Add(line);
                }
            }
            if (blocks.Count != 1)
            {
                throw new InvalidDataException($"docs/architecture.md should hold one mermaid block (the allowed arrows); it holds {blocks.Count}.");
            }
            var arrows = new List<(string, string)>();
            foreach (string line in blocks[0])
            {
                string text = line.Trim();
                if (text.StartsWith("%%", StringComparison.Ordinal) || !text.Contains("--", StringComparison.Ordinal))
                {
                    continue; // the graph's direction, comments, styles
                }
                Match m = Arrow.Match(line);
                if (!m.Success)
                {
                    // One arrow a line keeps the block readable both as text and to this parser.
                    throw new InvalidDataException($"docs/architecture.md: write one arrow a line as `A --> B`, not `{line.Trim()}`.");
                }
                arrows.Add((m.Groups[1].Value, m.Groups[2].Value));
            }
            return arrows;
        }
    }
}

using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Completes paths inside the rootfs the command will get: the -InputObject argument, or the
    /// variable piped into it (<c>$rootfs | Remove-InitramfsItem /usr/sh&lt;Tab&gt;</c>). An OciImage
    /// is expanded when that is cheap (its layers indexed in the cache), and the last one expanded is
    /// remembered, so repeated Tab presses do not expand it again (<see cref="InitramfsCache.TryExpandCheaply"/>).
    /// </summary>
    public sealed class RootfsPathCompleter : IArgumentCompleter
    {
        private static readonly System.Buffers.SearchValues<char> NeedsQuotes = System.Buffers.SearchValues.Create(" '$`;(){}@#,\"");

        /// <inheritdoc/>
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var rootfs = Unwrap(fakeBoundParameters["InputObject"]) ?? Unwrap(PipedVariableValue(commandAst));
            if (rootfs is null)
            {
                return Enumerable.Empty<CompletionResult>();
            }
            string word = wordToComplete.Trim('\'', '"');
            if (word.Length == 0)
            {
                word = "/";
            }
            int slash = word.LastIndexOf('/');
            string directory = slash <= 0 ? "/" : word[..slash];
            string prefix = word[(slash + 1)..];
            string real;
            try
            {
                // Through links as the kernel goes (merged /usr: /lib/ lists /usr/lib), keeping what was typed.
                real = rootfs.RealPath(directory, followLast: true);
            }
            catch (Errors.InitramfsException)
            {
                return Enumerable.Empty<CompletionResult>();
            }
            return rootfs.GetChildren(real)
                .Where(e => e.Name.StartsWith(prefix, StringComparison.Ordinal))
                .Select(e =>
                {
                    bool isDirectory = e.Type == EntryType.Directory
                        || (e.Type == EntryType.Symlink && rootfs.Resolve(e.Path)?.Type == EntryType.Directory);
                    string text = (directory == "/" ? "/" : directory + "/") + e.Name + (isDirectory ? "/" : string.Empty);
                    string quoted = text.AsSpan().IndexOfAny(NeedsQuotes) >= 0 ? "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'" : text;
                    return new CompletionResult(quoted, e.Name, CompletionResultType.ParameterValue, e.ToString());
                })
                .ToList();
        }

        private static Rootfs? Unwrap(object? value) => (value is PSObject ps ? ps.BaseObject : value) switch
        {
            Rootfs rootfs => rootfs,
            OciImage image => TryExpand(image),
            _ => null,
        };

        private static Rootfs? TryExpand(OciImage image)
        {
            using var cache = InitramfsCache.OpenForUpkeep();
            return cache.TryExpandCheaply(image);
        }

        private static PSObject? PipedVariableValue(CommandAst commandAst)
        {
            if (commandAst.Parent is not PipelineAst pipeline)
            {
                return null;
            }
            int index = pipeline.PipelineElements.IndexOf(commandAst);
            if (index <= 0 || pipeline.PipelineElements[index - 1] is not CommandExpressionAst { Expression: VariableExpressionAst variable })
            {
                return null;
            }
            // Completion runs inside a pipeline, where SessionStateProxy refuses calls; a script block
            // of just the variable reads it on this thread, from the prompt's scope, with no side effects.
            var value = ScriptBlock.Create("${" + variable.VariablePath.UserPath.Replace("}", "`}", StringComparison.Ordinal) + "}").Invoke();
            return value.Count == 1 ? value[0] : null;
        }
    }
}

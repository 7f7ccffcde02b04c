#Requires -Version 7.4
<#
    The part of PlatyPS this repository needs (PlatyPS is not served by the package registry here).

    docs/help/<Cmdlet>.md is PlatyPS 2.0.0-schema markdown: prose written by people, plus a SYNTAX
    section and one yaml block per parameter that restate the cmdlet's metadata.

      Update-HelpMarkdown   writes that markdown for a new cmdlet, and for new or removed
                            parameters, from the built cmdlets (PlatyPS's New-/Update-MarkdownHelp),
                            keeping the prose already written byte for byte.
      ConvertTo-MamlHelp    writes <Assembly>.dll-Help.xml: syntax and parameter facts from the
                            cmdlets' own metadata, prose and default values from the markdown.
      ConvertTo-AboutHelpText  turns about_<Topic>.md into the text of about_<Topic>.help.txt.
      Get-HelpMarkdownProblem  what keeps a markdown file from being finished help.

    Import it into a pwsh that has imported the built module: the module dll stays locked for the
    life of that process, so build.ps1 runs tools/help/*.ps1 in child processes.
#>

Set-StrictMode -Version Latest

$script:Ns = @{
    Maml    = 'http://schemas.microsoft.com/maml/2004/10'
    Command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    Dev     = 'http://schemas.microsoft.com/maml/dev/2004/10'
    MSHelp  = 'http://msdn.microsoft.com/mshelp'
    Msh     = 'http://msh'
}
$script:AllSets = '__AllParameterSets'
$script:CommonParametersText = 'This cmdlet supports the common parameters: -Debug, -ErrorAction, -ErrorVariable, ' +
    '-InformationAction, -InformationVariable, -OutBuffer, -OutVariable, -PipelineVariable, -ProgressAction, -Verbose, ' +
    '-WarningAction, and -WarningVariable. For more information, see ' +
    '[about_CommonParameters](http://go.microsoft.com/fwlink/?LinkID=113216).'
# Placeholders are PlatyPS's: `{{ ... }}` marks prose nobody wrote yet, and the help tests fail on it.
$script:PlaceholderPattern = '\{\{.*?\}\}'
$script:Ordinal = [StringComparer]::OrdinalIgnoreCase

#region Facts from the built command

# The short type name Get-Help shows: String[], SwitchParameter, InitramfsCompression.
function Get-HelpTypeName([type]$Type) {
    if ($Type.IsArray) { return (Get-HelpTypeName $Type.GetElementType()) + '[]' }
    if ($Type.IsGenericType) {
        $arguments = $Type.GetGenericArguments() | ForEach-Object { Get-HelpTypeName $_ }
        return ($Type.Name -replace '`\d+$') + '[' + ($arguments -join ', ') + ']'
    }
    $Type.Name
}

function Get-PipelineInputText([bool]$ByValue, [bool]$ByPropertyName) {
    $ways = @(if ($ByValue) { 'ByValue' }; if ($ByPropertyName) { 'ByPropertyName' })
    if ($ways) { "True ($($ways -join ', '))" } else { 'False' }
}

function Get-AcceptedValue($Metadata) {
    $set = $Metadata.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
    if ($set) { return @($set.ValidValues) }
    $type = $Metadata.ParameterType
    if ($type.IsArray) { $type = $type.GetElementType() }
    if ($type.IsEnum) { return @([Enum]::GetNames($type)) }
    @()
}

<#
.SYNOPSIS
    What the built command says about itself: its parameter sets in Get-Command's syntax order,
    and every parameter a user must be told about (all but the common parameters; -WhatIf and
    -Confirm are documented, as PlatyPS does), alphabetically, each with its metadata grouped
    by parameter set.
#>
function Get-CommandHelpFacts {
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)][System.Management.Automation.CommandInfo]$Command)
    process {
        $common = [System.Management.Automation.Cmdlet]::CommonParameters
        $setNames = @($Command.ParameterSets.Name)

        [string[]]$names = @($Command.Parameters.Keys | Where-Object { -not $common.Contains($_) })
        [Array]::Sort($names, $script:Ordinal)
        $parameters = foreach ($metadata in $names | ForEach-Object { $Command.Parameters[$_] }) {
            $isSwitch = $metadata.SwitchParameter
            $usages = [Collections.Generic.List[object]]::new()
            $sets = $metadata.ParameterSets.GetEnumerator() | Sort-Object { if ($_.Key -eq $script:AllSets) { -1 } else { $setNames.IndexOf($_.Key) } }
            foreach ($entry in $sets) {
                $m = $entry.Value
                $usage = [pscustomobject]@{
                    Sets          = [Collections.Generic.List[string]]::new()
                    Required      = [bool]$m.IsMandatory
                    Position      = if ($m.Position -ge 0) { [string]$m.Position } else { 'Named' }
                    PipelineInput = Get-PipelineInputText $m.ValueFromPipeline $m.ValueFromPipelineByPropertyName
                }
                $same = $usages | Where-Object { $_.Required -eq $usage.Required -and $_.Position -eq $usage.Position -and $_.PipelineInput -eq $usage.PipelineInput } |
                    Select-Object -First 1
                if ($same) { $usage = $same } else { $usages.Add($usage) }
                $usage.Sets.Add($(if ($entry.Key -eq $script:AllSets) { '(All)' } else { $entry.Key }))
            }
            [pscustomobject]@{
                Name           = $metadata.Name
                Type           = Get-HelpTypeName $metadata.ParameterType
                IsSwitch       = [bool]$isSwitch
                Aliases        = @($metadata.Aliases)
                AcceptedValues = @(Get-AcceptedValue $metadata)
                Globbing       = [bool]($metadata.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
                Usages         = @($usages)
            }
        }
        $parameters = @($parameters)

        # Get-Command's order: positional by position, then mandatory named, then optional named.
        $syntax = foreach ($set in $Command.ParameterSets) {
            $own = @($set.Parameters | Where-Object { -not $common.Contains($_.Name) })
            $ordered = @($own | Where-Object Position -GE 0 | Sort-Object -Stable Position) +
                @($own | Where-Object { $_.Position -lt 0 -and $_.IsMandatory }) +
                @($own | Where-Object { $_.Position -lt 0 -and -not $_.IsMandatory })
            [pscustomobject]@{
                Name       = $set.Name
                IsDefault  = $set.IsDefault -and $set.Name -ne $script:AllSets
                Parameters = @(foreach ($p in $ordered) {
                        $facts = $parameters | Where-Object Name -EQ $p.Name
                        [pscustomobject]@{
                            Name           = $p.Name
                            Required       = [bool]$p.IsMandatory
                            Position       = if ($p.Position -ge 0) { [string]$p.Position } else { 'Named' }
                            PipelineInput  = Get-PipelineInputText $p.ValueFromPipeline $p.ValueFromPipelineByPropertyName
                            Type           = $facts.Type
                            IsSwitch       = $facts.IsSwitch
                            Aliases        = $facts.Aliases
                            AcceptedValues = $facts.AcceptedValues
                            Globbing       = $facts.Globbing
                        }
                    })
            }
        }

        $inputTypes = @($Command.Parameters.Values | Where-Object { -not $common.Contains($_.Name) } |
            Where-Object { $_.ParameterSets.Values | Where-Object { $_.ValueFromPipeline -or $_.ValueFromPipelineByPropertyName } } |
            ForEach-Object { $_.ParameterType.FullName } | Select-Object -Unique)
        [pscustomobject]@{
            Name                     = $Command.Name
            Verb                     = $Command.Name.Split('-', 2)[0]
            Noun                     = $Command.Name.Split('-', 2)[-1]
            SupportsCommonParameters = $Command -is [System.Management.Automation.CmdletInfo] -or $Command.CmdletBinding
            ParameterSets            = @($syntax)
            Parameters               = $parameters
            InputTypes               = $inputTypes
            OutputTypes              = @(@($Command.OutputType).Name | Select-Object -Unique)
        }
    }
}

function Format-SyntaxParameter($Parameter) {
    $text = "-$($Parameter.Name)"
    if (-not $Parameter.IsSwitch) {
        $value = if ($Parameter.AcceptedValues) { '{' + ($Parameter.AcceptedValues -join ' | ') + '}' } else { "<$($Parameter.Type)>" }
        $text = if ($Parameter.Position -ne 'Named') { "[$text] $value" } else { "$text $value" }
    }
    if ($Parameter.Required) { $text } else { "[$text]" }
}

<#
.SYNOPSIS
    One syntax line as Get-Help prints it from the MAML this module writes.
#>
function Format-HelpSyntax {
    param([Parameter(Mandatory)]$Facts, [Parameter(Mandatory)]$ParameterSet)
    $parts = @($Facts.Name) + @($ParameterSet.Parameters | ForEach-Object { Format-SyntaxParameter $_ })
    if ($Facts.SupportsCommonParameters) { $parts += '[<CommonParameters>]' }
    $parts -join ' '
}

#endregion

#region Markdown: split into blocks that put back together byte for byte

function Split-MarkdownLine([string]$Text) { , $Text.Replace("`r`n", "`n").Split("`n") }

function Test-FenceLine([string]$Line) { $Line -match '^\s{0,3}(`{3,}|~{3,})' }

# Splits lines at headings of one level (outside code fences) into a lead and blocks; each block
# keeps its heading line and body lines, so joining them gives the lines back unchanged.
function Split-MarkdownBlock([string[]]$Lines, [int]$Level) {
    $prefix = ('#' * $Level) + ' '
    $lead = [Collections.Generic.List[string]]::new()
    $blocks = [Collections.Generic.List[object]]::new()
    $current = $null
    $fence = $null
    foreach ($line in $Lines) {
        if ($fence) {
            if ($line -match '^\s{0,3}(`{3,}|~{3,})\s*$' -and $Matches[1][0] -eq $fence[0] -and $Matches[1].Length -ge $fence.Length) { $fence = $null }
        }
        elseif ($line -match '^\s{0,3}(`{3,}|~{3,})') {
            $fence = $Matches[1]
        }
        elseif ($line.StartsWith($prefix)) {
            $current = [pscustomobject]@{
                Heading = $line
                Title   = $line.Substring($prefix.Length).Trim()
                Body    = [Collections.Generic.List[string]]::new()
            }
            $blocks.Add($current)
            continue
        }
        if ($current) { $current.Body.Add($line) } else { $lead.Add($line) }
    }
    [pscustomobject]@{ Lead = $lead; Blocks = $blocks }
}

function Join-MarkdownBlock($Lead, $Blocks) {
    $lines = [Collections.Generic.List[string]]::new()
    foreach ($line in $Lead) { $lines.Add($line) }
    foreach ($block in $Blocks) {
        $lines.Add($block.Heading)
        foreach ($line in $block.Body) { $lines.Add($line) }
    }
    $lines
}

<#
.SYNOPSIS
    Parses PlatyPS markdown into front matter, head (the '# Name' title) and '## ' sections.
#>
function ConvertFrom-HelpMarkdown {
    param([Parameter(Mandatory)][AllowEmptyString()][string]$Text)
    $lines = Split-MarkdownLine $Text
    $front = @()
    $rest = $lines
    if ($lines.Count -gt 1 -and $lines[0] -eq '---') {
        $end = [Array]::IndexOf($lines, '---', 1)
        if ($end -gt 0) {
            $front = $lines[0..$end]
            $rest = if ($end + 1 -lt $lines.Count) { $lines[($end + 1)..($lines.Count - 1)] } else { @() }
        }
    }
    $split = Split-MarkdownBlock $rest 2
    $title = $split.Lead | Where-Object { $_ -match '^# ' } | Select-Object -First 1
    $metadata = [ordered]@{}
    foreach ($line in $front | Select-Object -Skip 1 | Select-Object -SkipLast 1) {
        if ($line -match '^([^:]+):\s*(.*)$') { $metadata[$Matches[1].Trim()] = $Matches[2].Trim() }
    }
    [pscustomobject]@{
        FrontMatter = @($front)
        Metadata    = $metadata
        Title       = if ($title) { $title.Substring(2).Trim() } else { $null }
        Head        = $split.Lead
        Sections    = $split.Blocks
    }
}

function ConvertTo-HelpMarkdownText($Document) {
    $lines = [Collections.Generic.List[string]]::new()
    foreach ($line in $Document.FrontMatter) { $lines.Add($line) }
    foreach ($line in Join-MarkdownBlock $Document.Head $Document.Sections) { $lines.Add($line) }
    $lines -join "`n"
}

function Read-HelpMarkdown([string]$Path) {
    ConvertFrom-HelpMarkdown -Text ([IO.File]::ReadAllText($Path))
}

function Get-HelpSection($Document, [string]$Name) {
    $Document.Sections | Where-Object { $script:Ordinal.Equals($_.Title, $Name) } | Select-Object -First 1
}

# A '### -Name' block: the description, its yaml blocks (content lines) and what follows them.
function Split-ParameterBlock($Block) {
    $description = [Collections.Generic.List[string]]::new()
    $yaml = [Collections.Generic.List[object]]::new()
    $tail = [Collections.Generic.List[string]]::new()
    $state = 'description'
    $current = $null
    foreach ($line in $Block.Body) {
        if ($state -ne 'yaml' -and $line -match '^```yaml\s*$') {
            $current = [Collections.Generic.List[string]]::new()
            $state = 'yaml'
            $tail.Clear()
        }
        elseif ($state -eq 'yaml') {
            if ($line -match '^```\s*$') { $yaml.Add($current); $state = 'after' } else { $current.Add($line) }
        }
        elseif ($state -eq 'after') { $tail.Add($line) }
        else { $description.Add($line) }
    }
    [pscustomobject]@{ Description = $description; Yaml = $yaml; Tail = $tail }
}

function ConvertFrom-ParameterYaml([string[]]$Lines) {
    $values = [ordered]@{}
    foreach ($line in $Lines) {
        if ($line -match '^([^:]+):\s*(.*)$') { $values[$Matches[1].Trim()] = $Matches[2].Trim() }
    }
    $values
}

# The documented parameter blocks of a PARAMETERS section, by name.
function Get-DocumentedParameter($Document) {
    $section = Get-HelpSection $Document 'PARAMETERS'
    $result = [ordered]@{}
    if (-not $section) { return $result }
    foreach ($block in (Split-MarkdownBlock $section.Body 3).Blocks | Where-Object { $_.Title -like '-*' }) {
        $parts = Split-ParameterBlock $block
        $result[$block.Title.Substring(1).Trim()] = [pscustomobject]@{
            Description = $parts.Description
            Yaml        = if ($parts.Yaml.Count) { ConvertFrom-ParameterYaml $parts.Yaml[0] } else { [ordered]@{} }
        }
    }
    $result
}

#endregion

#region Writing and updating markdown

function Format-ParameterYaml($Parameter, $Usage, [string]$DefaultValue) {
    $lines = [Collections.Generic.List[string]]::new()
    $lines.Add("Type: $($Parameter.Type)")
    $lines.Add("Parameter Sets: $($Usage.Sets -join ', ')")
    $lines.Add(("Aliases: " + ($Parameter.Aliases -join ', ')).TrimEnd())
    if ($Parameter.AcceptedValues) { $lines.Add("Accepted values: $($Parameter.AcceptedValues -join ', ')") }
    $lines.Add('')
    $lines.Add("Required: $($Usage.Required)")
    $lines.Add("Position: $($Usage.Position)")
    $lines.Add("Default value: $DefaultValue")
    $lines.Add("Accept pipeline input: $($Usage.PipelineInput)")
    $lines.Add("Accept wildcard characters: $($Parameter.Globbing)")
    $lines
}

function New-ParameterYamlLine($Parameter, [string]$DefaultValue) {
    $lines = [Collections.Generic.List[string]]::new()
    $first = $true
    foreach ($usage in $Parameter.Usages) {
        if (-not $first) { $lines.Add('') }
        $first = $false
        $lines.Add('```yaml')
        foreach ($line in Format-ParameterYaml $Parameter $usage $DefaultValue) { $lines.Add($line) }
        $lines.Add('```')
    }
    $lines
}

function Get-NewDefaultValue($Parameter) { if ($Parameter.IsSwitch) { 'False' } else { 'None' } }

function New-ParameterBlock($Parameter) {
    $body = [Collections.Generic.List[string]]::new()
    foreach ($line in @('', "{{ Fill $($Parameter.Name) Description }}", '')) { $body.Add($line) }
    foreach ($line in New-ParameterYamlLine $Parameter (Get-NewDefaultValue $Parameter)) { $body.Add($line) }
    $body.Add('')
    [pscustomobject]@{ Heading = "### -$($Parameter.Name)"; Title = "-$($Parameter.Name)"; Body = $body }
}

function New-CommonParametersBlock {
    $body = [Collections.Generic.List[string]]::new()
    foreach ($line in @('', $script:CommonParametersText, '')) { $body.Add($line) }
    [pscustomobject]@{ Heading = '### CommonParameters'; Title = 'CommonParameters'; Body = $body }
}

function New-SyntaxBody($Facts) {
    $body = [Collections.Generic.List[string]]::new()
    $body.Add('')
    foreach ($set in $Facts.ParameterSets) {
        $body.Add('### ' + $set.Name + $(if ($set.IsDefault) { ' (Default)' }))
        $body.Add('')
        $body.Add('```')
        $body.Add((Format-HelpSyntax -Facts $Facts -ParameterSet $set))
        $body.Add('```')
        $body.Add('')
    }
    $body
}

function New-Section([string]$Title, [string[]]$Body) {
    $list = [Collections.Generic.List[string]]::new()
    foreach ($line in $Body) { $list.Add($line) }
    [pscustomobject]@{ Heading = "## $Title"; Title = $Title; Body = $list }
}

# The text of a new file: PlatyPS's skeleton, every piece of prose a {{ placeholder }}.
function New-HelpMarkdownText($Facts, [string]$ExternalHelpFile, [string]$ModuleName) {
    $lines = [Collections.Generic.List[string]]::new()
    foreach ($line in @('---', "external help file: $ExternalHelpFile", "Module Name: $ModuleName", 'online version:', 'schema: 2.0.0', '---', '',
            "# $($Facts.Name)", '', '## SYNOPSIS', '', '{{ Fill in the Synopsis }}', '', '## SYNTAX')) { $lines.Add($line) }
    foreach ($line in New-SyntaxBody $Facts) { $lines.Add($line) }
    foreach ($line in @('## DESCRIPTION', '', '{{ Fill in the Description }}', '', '## EXAMPLES', '',
            '### Example 1', '', '```powershell', '{{ Add example code here }}', '```', '', '{{ Add example description here }}', '',
            '## PARAMETERS')) { $lines.Add($line) }
    $blocks = @($Facts.Parameters | ForEach-Object { New-ParameterBlock $_ })
    if ($Facts.SupportsCommonParameters) { $blocks += New-CommonParametersBlock }
    foreach ($line in Join-MarkdownBlock @('') $blocks) { $lines.Add($line) }
    $lines.Add('## INPUTS')
    $lines.Add('')
    foreach ($type in @($Facts.InputTypes) + @(if (-not $Facts.InputTypes) { 'None' })) {
        foreach ($line in @("### $type", '', '{{ Fill in the Description }}', '')) { $lines.Add($line) }
    }
    $lines.Add('## OUTPUTS')
    $lines.Add('')
    foreach ($type in @($Facts.OutputTypes) + @(if (-not $Facts.OutputTypes) { 'None' })) {
        foreach ($line in @("### $type", '', '{{ Fill in the Description }}', '')) { $lines.Add($line) }
    }
    foreach ($line in @('## NOTES', '', '{{ Fill in the Notes }}', '', '## RELATED LINKS', '', '{{ Fill in the related links here }}', '')) { $lines.Add($line) }
    $lines -join "`n"
}

# Rewrites the SYNTAX section and the parameter blocks of an existing file from the facts.
# Returns the names of the parameters added and removed.
function Update-HelpDocument($Document, $Facts) {
    $added = [Collections.Generic.List[string]]::new()
    $removed = [Collections.Generic.List[string]]::new()

    $syntax = Get-HelpSection $Document 'SYNTAX'
    if (-not $syntax) {
        $syntax = New-Section 'SYNTAX' @()
        $after = Get-HelpSection $Document 'SYNOPSIS'
        $Document.Sections.Insert($(if ($after) { $Document.Sections.IndexOf($after) + 1 } else { 0 }), $syntax)
    }
    $syntax.Body = @(New-SyntaxBody $Facts)

    $section = Get-HelpSection $Document 'PARAMETERS'
    if (-not $section) {
        $section = New-Section 'PARAMETERS' @('')
        $before = Get-HelpSection $Document 'INPUTS'
        $Document.Sections.Insert($(if ($before) { $Document.Sections.IndexOf($before) } else { $Document.Sections.Count }), $section)
    }
    $split = Split-MarkdownBlock $section.Body 3
    $blocks = [Collections.Generic.List[object]]::new()
    foreach ($block in $split.Blocks) {
        if ($block.Title -notlike '-*') { $blocks.Add($block); continue }
        $name = $block.Title.Substring(1).Trim()
        $parameter = $Facts.Parameters | Where-Object { $script:Ordinal.Equals($_.Name, $name) }
        if (-not $parameter) {
            $removed.Add($name)
            continue
        }
        # The yaml restates metadata, so it is rewritten; only the default value is the author's.
        $parts = Split-ParameterBlock $block
        $default = if ($parts.Yaml.Count) { (ConvertFrom-ParameterYaml $parts.Yaml[0])['Default value'] } else { $null }
        if (-not $default) { $default = Get-NewDefaultValue $parameter }
        $body = [Collections.Generic.List[string]]::new()
        foreach ($line in $parts.Description) { $body.Add($line) }
        if ($parts.Description.Count -eq 0 -or $parts.Description[-1] -ne '') { $body.Add('') }
        foreach ($line in New-ParameterYamlLine $parameter $default) { $body.Add($line) }
        if ($parts.Tail.Count) { foreach ($line in $parts.Tail) { $body.Add($line) } } else { $body.Add('') }
        $block.Body = $body
        $blocks.Add($block)
    }
    foreach ($parameter in $Facts.Parameters) {
        if ($blocks | Where-Object { $_.Title -like '-*' -and $script:Ordinal.Equals($_.Title.Substring(1).Trim(), $parameter.Name) }) { continue }
        # Alphabetical, as PlatyPS orders them: before the first block that sorts after it.
        $index = $blocks.Count
        for ($i = 0; $i -lt $blocks.Count; $i++) {
            $title = $blocks[$i].Title
            if ($title -notlike '-*' -or $script:Ordinal.Compare($title.Substring(1).Trim(), $parameter.Name) -gt 0) { $index = $i; break }
        }
        $blocks.Insert($index, (New-ParameterBlock $parameter))
        $added.Add($parameter.Name)
    }
    if ($Facts.SupportsCommonParameters -and -not ($blocks | Where-Object Title -EQ 'CommonParameters')) {
        $blocks.Add((New-CommonParametersBlock))
    }
    $lead = if ($split.Lead.Count) { $split.Lead } else { @('') }
    $section.Body = @(Join-MarkdownBlock $lead $blocks)
    [pscustomobject]@{ Added = @($added); Removed = @($removed) }
}

<#
.SYNOPSIS
    What Update-HelpMarkdown would make of one command's markdown, without writing anything:
    the new text, and whether it was Created (no markdown yet), Updated or Unchanged, with the
    names of the parameter blocks added and removed.
#>
function Get-HelpMarkdownUpdate {
    param(
        [Parameter(Mandatory)][System.Management.Automation.CommandInfo]$Command,
        # The current markdown; none means a new file.
        [AllowNull()][AllowEmptyString()][string]$Text,
        [string]$ModuleName = $Command.ModuleName,
        [string]$ExternalHelpFile = "$($Command.ModuleName).dll-Help.xml"
    )
    $facts = Get-CommandHelpFacts $Command
    if (-not $Text) {
        return [pscustomobject]@{
            Command = $Command.Name; Action = 'Created'; Text = New-HelpMarkdownText $facts $ExternalHelpFile $ModuleName
            Added = @($facts.Parameters.Name); Removed = @()
        }
    }
    $document = ConvertFrom-HelpMarkdown -Text $Text
    $changes = Update-HelpDocument $document $facts
    $new = ConvertTo-HelpMarkdownText $document
    [pscustomobject]@{
        Command = $Command.Name; Action = $(if ($new -cne $Text) { 'Updated' } else { 'Unchanged' }); Text = $new
        Added = $changes.Added; Removed = $changes.Removed
    }
}

<#
.SYNOPSIS
    Writes docs/help/<Cmdlet>.md for each command that has none, and brings existing files up to
    date with the built command: the SYNTAX section and the yaml blocks are rewritten from its
    metadata, missing parameters get a block with placeholder prose (in alphabetical order), and
    blocks of parameters that no longer exist are removed with a warning. Every other line (the
    prose) is kept byte for byte. Returns one record per command (Get-HelpMarkdownUpdate's, with
    the file's Path).
#>
function Update-HelpMarkdown {
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)][System.Management.Automation.CommandInfo[]]$Command,
        [Parameter(Mandatory)][string]$Path,
        [string]$ModuleName = $Command[0].ModuleName,
        [string]$ExternalHelpFile = "$($Command[0].ModuleName).dll-Help.xml"
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) { $null = New-Item -ItemType Directory -Path $Path }
    foreach ($cmd in $Command) {
        $file = Join-Path $Path "$($cmd.Name).md"
        $old = if (Test-Path -LiteralPath $file -PathType Leaf) { [IO.File]::ReadAllText($file) } else { $null }
        $result = Get-HelpMarkdownUpdate -Command $cmd -Text $old -ModuleName $ModuleName -ExternalHelpFile $ExternalHelpFile
        foreach ($name in $result.Removed) {
            Write-Warning "$($cmd.Name).md: removed the block of -$name, which the cmdlet no longer has (move its text if the parameter was renamed)."
        }
        if ($result.Action -ne 'Unchanged' -and $PSCmdlet.ShouldProcess($file, "$($result.Action) help markdown")) {
            [IO.File]::WriteAllText($file, $result.Text)  # UTF-8 without BOM, LF line ends
        }
        $result | Add-Member -NotePropertyName Path -NotePropertyValue $file -PassThru
    }
}

#endregion

#region Markdown prose to help text

function Convert-Inline([string]$Text) {
    $Text = $Text -replace '\[([^\]]+)\]\((https?://[^)\s]+)\)', '$1 ($2)'
    $Text = $Text -replace '\[([^\]]+)\]\(([^)\s]*)\)', '$1'
    $Text -replace '\*\*([^*]+)\*\*', '$1'
}

<#
.SYNOPSIS
    Markdown lines to the paragraphs Get-Help prints: the lines of a paragraph joined (Get-Help
    wraps them to the window), list items and table rows one per line, code blocks kept as they
    are. Markup that reads badly as text (links, bold) is removed; `code` stays.
#>
function ConvertTo-HelpParagraph {
    param([AllowEmptyCollection()][AllowNull()][string[]]$Lines)
    $paragraphs = [Collections.Generic.List[string]]::new()
    $buffer = [Collections.Generic.List[string]]::new()
    $kind = $null
    $fence = $null
    $flush = {
        if ($buffer.Count) {
            $joined = if ($kind -eq 'text') { $buffer -join ' ' } else { $buffer -join "`n" }
            $paragraphs.Add($(if ($kind -eq 'code') { $joined } else { Convert-Inline $joined }))
        }
        $buffer.Clear()
    }
    foreach ($line in @($Lines)) {
        if ($fence) {
            if ($line -match '^\s{0,3}(`{3,}|~{3,})\s*$' -and $Matches[1][0] -eq $fence[0]) {
                $kind = 'code'; . $flush; $kind = $null; $fence = $null
            }
            else { $buffer.Add($line) }  # Get-Help indents every line of a paragraph alike
            continue
        }
        if ($line -match '^\s{0,3}(`{3,}|~{3,})') { . $flush; $fence = $Matches[1]; continue }
        if ($line.Trim() -eq '') { . $flush; $kind = $null; continue }
        if ($line -match '^\s{0,3}([-*+]|\d+\.)\s+(.*)$') {
            if ($kind -ne 'list') { . $flush; $kind = 'list' }
            $buffer.Add("$($Matches[1]) $($Matches[2].Trim())")
            continue
        }
        if ($line -match '^\s*\|') {
            if ($kind -ne 'table') { . $flush; $kind = 'table' }
            $buffer.Add($line.Trim())
            continue
        }
        if ($kind -eq 'list') { $buffer[$buffer.Count - 1] += ' ' + $line.Trim(); continue }
        if ($kind -ne 'text') { . $flush; $kind = 'text' }
        $buffer.Add($line.Trim())
    }
    if ($fence) { $kind = 'code' }
    . $flush
    , $paragraphs
}

function Get-SectionParagraph($Document, [string]$Name) {
    $section = Get-HelpSection $Document $Name
    if ($section) { ConvertTo-HelpParagraph $section.Body } else { , @() }
}

# '### Title' blocks of a section (INPUTS, OUTPUTS) as Name + paragraphs.
function Get-TypedBlock($Document, [string]$Name) {
    $section = Get-HelpSection $Document $Name
    if (-not $section) { return }
    foreach ($block in (Split-MarkdownBlock $section.Body 3).Blocks) {
        [pscustomobject]@{ Name = $block.Title; Paragraphs = ConvertTo-HelpParagraph $block.Body }
    }
}

# Examples: the PowerShell code blocks are the code; other text and blocks (output, JSON) are remarks.
function Get-HelpExample($Document) {
    $section = Get-HelpSection $Document 'EXAMPLES'
    if (-not $section) { return }
    foreach ($block in (Split-MarkdownBlock $section.Body 3).Blocks) {
        $code = [Collections.Generic.List[string]]::new()
        $intro = [Collections.Generic.List[string]]::new()
        $remarks = [Collections.Generic.List[string]]::new()
        $fence = $null
        $isCode = $false
        foreach ($line in $block.Body) {
            if ($fence) {
                if ($line -match '^\s{0,3}(`{3,}|~{3,})\s*$' -and $Matches[1][0] -eq $fence[0]) {
                    $fence = $null
                    if (-not $isCode) { $remarks.Add($line) }
                }
                elseif ($isCode) { $code.Add($line) }
                else { $remarks.Add($line) }
                continue
            }
            if ($line -match '^\s{0,3}(`{3,}|~{3,})\s*(\S*)') {
                $fence = $Matches[1]
                $isCode = $Matches[2] -in 'powershell', 'PowerShell', 'ps1', 'pwsh', ''
                if ($isCode) { if ($code.Count) { $code.Add('') } } else { $remarks.Add($line) }
                continue
            }
            if ($code.Count) { $remarks.Add($line) } else { $intro.Add($line) }
        }
        [pscustomobject]@{
            Title   = $block.Title
            Code    = ($code -join "`n")
            Remarks = ConvertTo-HelpParagraph (@($intro) + @('') + @($remarks))
        }
    }
}

function Get-HelpLink($Document) {
    $online = $Document.Metadata['online version']
    if ($online) { [pscustomobject]@{ Text = 'Online Version:'; Uri = $online } }
    $section = Get-HelpSection $Document 'RELATED LINKS'
    if (-not $section) { return }
    foreach ($match in [regex]::Matches(($section.Body -join "`n"), '\[([^\]]+)\]\(([^)\s]*)\)')) {
        $uri = $match.Groups[2].Value
        [pscustomobject]@{ Text = $match.Groups[1].Value; Uri = $(if ($uri -match '^[a-z]+://') { $uri } else { '' }) }
    }
}

#endregion

#region Checks

<#
.SYNOPSIS
    What keeps a command's markdown from being finished help: placeholders, a missing synopsis,
    description or examples (at least two), parameters of the code that are not documented and
    documented parameters the code does not have. Empty when the help is complete.
#>
function Get-HelpMarkdownProblem {
    param([Parameter(Mandatory)][System.Management.Automation.CommandInfo]$Command, [Parameter(Mandatory)][string]$Path)
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) { return "$($Command.Name): no help markdown at '$Path'." }
    $text = [IO.File]::ReadAllText($Path)
    $document = ConvertFrom-HelpMarkdown -Text $text
    $facts = Get-CommandHelpFacts $Command
    foreach ($match in [regex]::Matches($text, $script:PlaceholderPattern)) { "$($Command.Name): placeholder $($match.Value)" }
    if ($document.Title -ne $Command.Name) { "$($Command.Name): the title is '$($document.Title)'." }
    foreach ($name in 'SYNOPSIS', 'DESCRIPTION') {
        if (-not (Get-SectionParagraph $document $name).Count) { "$($Command.Name): no $name." }
    }
    $examples = @(Get-HelpExample $document | Where-Object Code)
    if ($examples.Count -lt 2) { "$($Command.Name): $($examples.Count) examples with code; at least 2 are needed." }
    $documented = Get-DocumentedParameter $document
    foreach ($p in $facts.Parameters) {
        if (-not $documented.Contains($p.Name)) { "$($Command.Name): -$($p.Name) is not documented." }
        elseif (-not (ConvertTo-HelpParagraph $documented[$p.Name].Description).Count) { "$($Command.Name): -$($p.Name) has no description." }
    }
    foreach ($name in $documented.Keys) {
        if (-not ($facts.Parameters | Where-Object Name -EQ $name)) { "$($Command.Name): -$name is documented but the cmdlet has no such parameter." }
    }
}

#endregion

#region MAML

function Write-Para([Xml.XmlWriter]$Writer, $Paragraphs) {
    foreach ($p in @($Paragraphs)) { $Writer.WriteElementString('maml', 'para', $script:Ns.Maml, $p) }
}

function Write-Description([Xml.XmlWriter]$Writer, $Paragraphs) {
    $Writer.WriteStartElement('maml', 'description', $script:Ns.Maml)
    Write-Para $Writer $Paragraphs
    $Writer.WriteEndElement()
}

function Write-MamlParameter([Xml.XmlWriter]$Writer, $Parameter, $Usage, $Paragraphs, [string]$DefaultValue) {
    $w = $Writer
    $w.WriteStartElement('command', 'parameter', $script:Ns.Command)
    $w.WriteAttributeString('required', "$($Usage.Required)".ToLowerInvariant())
    $w.WriteAttributeString('variableLength', 'true')
    $w.WriteAttributeString('globbing', "$($Parameter.Globbing)".ToLowerInvariant())
    $w.WriteAttributeString('pipelineInput', $Usage.PipelineInput)
    $w.WriteAttributeString('position', $(if ($Usage.Position -eq 'Named') { 'named' } else { $Usage.Position }))
    $w.WriteAttributeString('aliases', $(if ($Parameter.Aliases) { $Parameter.Aliases -join ', ' } else { 'none' }))
    $w.WriteElementString('maml', 'name', $script:Ns.Maml, $Parameter.Name)
    Write-Description $w $Paragraphs
    if ($Parameter.AcceptedValues) {
        $w.WriteStartElement('command', 'parameterValueGroup', $script:Ns.Command)
        foreach ($value in $Parameter.AcceptedValues) {
            $w.WriteStartElement('command', 'parameterValue', $script:Ns.Command)
            $w.WriteAttributeString('required', 'false')
            $w.WriteAttributeString('command', 'variableLength', $script:Ns.Command, 'false')
            $w.WriteString($value)
            $w.WriteEndElement()
        }
        $w.WriteEndElement()
    }
    if (-not $Parameter.IsSwitch) {
        $w.WriteStartElement('command', 'parameterValue', $script:Ns.Command)
        $w.WriteAttributeString('required', 'true')
        $w.WriteAttributeString('variableLength', 'false')
        $w.WriteString($Parameter.Type)
        $w.WriteEndElement()
    }
    $w.WriteStartElement('dev', 'type', $script:Ns.Dev)
    $w.WriteElementString('maml', 'name', $script:Ns.Maml, $Parameter.Type)
    $w.WriteElementString('maml', 'uri', $script:Ns.Maml, '')
    $w.WriteEndElement()
    $w.WriteElementString('dev', 'defaultValue', $script:Ns.Dev, $DefaultValue)
    $w.WriteEndElement()
}

function Write-MamlType([Xml.XmlWriter]$Writer, [string]$Element, $Blocks) {
    foreach ($block in $Blocks) {
        $Writer.WriteStartElement('command', $Element, $script:Ns.Command)
        $Writer.WriteStartElement('dev', 'type', $script:Ns.Dev)
        $Writer.WriteElementString('maml', 'name', $script:Ns.Maml, $block.Name)
        $Writer.WriteEndElement()
        Write-Description $Writer $block.Paragraphs
        $Writer.WriteEndElement()
    }
}

function Write-MamlCommand([Xml.XmlWriter]$Writer, $Facts, $Document) {
    $w = $Writer
    $w.WriteStartElement('command', 'command', $script:Ns.Command)
    foreach ($prefix in 'maml', 'command', 'dev', 'MSHelp') {
        $w.WriteAttributeString('xmlns', $prefix, 'http://www.w3.org/2000/xmlns/', $script:Ns[$prefix])
    }

    $w.WriteStartElement('command', 'details', $script:Ns.Command)
    $w.WriteElementString('command', 'name', $script:Ns.Command, $Facts.Name)
    $w.WriteElementString('command', 'verb', $script:Ns.Command, $Facts.Verb)
    $w.WriteElementString('command', 'noun', $script:Ns.Command, $Facts.Noun)
    Write-Description $w (Get-SectionParagraph $Document 'SYNOPSIS')
    $w.WriteEndElement()

    Write-Description $w (Get-SectionParagraph $Document 'DESCRIPTION')

    $documented = Get-DocumentedParameter $Document
    $describe = {
        param($name)
        if ($documented.Contains($name)) { ConvertTo-HelpParagraph $documented[$name].Description } else { , @() }
    }
    $default = {
        param($parameter)
        $value = if ($documented.Contains($parameter.Name)) { $documented[$parameter.Name].Yaml['Default value'] }
        if ($value) { $value } else { Get-NewDefaultValue $parameter }
    }

    $w.WriteStartElement('command', 'syntax', $script:Ns.Command)
    foreach ($set in $Facts.ParameterSets) {
        $w.WriteStartElement('command', 'syntaxItem', $script:Ns.Command)
        $w.WriteElementString('maml', 'name', $script:Ns.Maml, $Facts.Name)
        foreach ($p in $set.Parameters) { Write-MamlParameter $w $p $p (& $describe $p.Name) (& $default $p) }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'parameters', $script:Ns.Command)
    foreach ($p in $Facts.Parameters) { Write-MamlParameter $w $p $p.Usages[0] (& $describe $p.Name) (& $default $p) }
    $w.WriteEndElement()

    $inputs = @(Get-TypedBlock $Document 'INPUTS')
    if (-not $inputs) { $inputs = @($Facts.InputTypes | ForEach-Object { [pscustomobject]@{ Name = $_; Paragraphs = @() } }) }
    $w.WriteStartElement('command', 'inputTypes', $script:Ns.Command)
    Write-MamlType $w 'inputType' $inputs
    $w.WriteEndElement()

    $outputs = @(Get-TypedBlock $Document 'OUTPUTS')
    if (-not $outputs) { $outputs = @($Facts.OutputTypes | ForEach-Object { [pscustomobject]@{ Name = $_; Paragraphs = @() } }) }
    $w.WriteStartElement('command', 'returnValues', $script:Ns.Command)
    Write-MamlType $w 'returnValue' $outputs
    $w.WriteEndElement()

    $w.WriteStartElement('maml', 'alertSet', $script:Ns.Maml)
    $w.WriteStartElement('maml', 'alert', $script:Ns.Maml)
    Write-Para $w (Get-SectionParagraph $Document 'NOTES')
    $w.WriteEndElement()
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'examples', $script:Ns.Command)
    foreach ($example in Get-HelpExample $Document) {
        $w.WriteStartElement('command', 'example', $script:Ns.Command)
        $w.WriteElementString('maml', 'title', $script:Ns.Maml, "--------- $($example.Title) ---------")
        $w.WriteElementString('dev', 'code', $script:Ns.Dev, $example.Code)
        $w.WriteStartElement('dev', 'remarks', $script:Ns.Dev)
        Write-Para $w (@($example.Remarks) + '')  # the empty paragraph spaces the examples apart
        $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'relatedLinks', $script:Ns.Command)
    foreach ($link in Get-HelpLink $Document) {
        $w.WriteStartElement('maml', 'navigationLink', $script:Ns.Maml)
        $w.WriteElementString('maml', 'linkText', $script:Ns.Maml, $link.Text)
        $w.WriteElementString('maml', 'uri', $script:Ns.Maml, $link.Uri)
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteEndElement()
}

<#
.SYNOPSIS
    Writes the MAML help file of the commands: syntax items, parameter attributes (required,
    position, pipeline input, globbing, aliases, type, accepted values) from the commands'
    metadata; synopsis, description, parameter text and default values, inputs, outputs, notes,
    examples and related links from <MarkdownPath>/<Command>.md. A command without markdown
    still gets its syntax and parameters. Writes a warning for every problem the markdown has
    (Get-HelpMarkdownProblem) and returns the problems.
#>
function ConvertTo-MamlHelp {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][System.Management.Automation.CommandInfo[]]$Command,
        [Parameter(Mandatory)][string]$MarkdownPath,
        [Parameter(Mandatory)][string]$OutputFile
    )
    $settings = [Xml.XmlWriterSettings]@{
        Indent       = $true
        IndentChars  = '  '
        NewLineChars = "`n"
        Encoding     = [Text.UTF8Encoding]::new($false)
    }
    $directory = Split-Path -Parent $OutputFile
    if (-not (Test-Path -LiteralPath $directory)) { $null = New-Item -ItemType Directory -Path $directory }
    $problems = [Collections.Generic.List[string]]::new()
    $writer = [Xml.XmlWriter]::Create($OutputFile, $settings)
    try {
        $writer.WriteStartDocument()
        $writer.WriteStartElement('helpItems', $script:Ns.Msh)
        $writer.WriteAttributeString('schema', 'maml')
        foreach ($cmd in $Command) {
            $file = Join-Path $MarkdownPath "$($cmd.Name).md"
            foreach ($problem in Get-HelpMarkdownProblem -Command $cmd -Path $file) { $problems.Add($problem) }
            $document = if (Test-Path -LiteralPath $file) { Read-HelpMarkdown $file } else { ConvertFrom-HelpMarkdown -Text '' }
            Write-MamlCommand $writer (Get-CommandHelpFacts $cmd) $document
        }
        $writer.WriteEndElement()
        $writer.WriteEndDocument()
    }
    finally {
        $writer.Dispose()
    }
    foreach ($problem in $problems) { Write-Warning $problem }
    $problems
}

#endregion

#region About topics

function Format-Wrapped([string]$Text, [int]$Indent, [int]$Hanging = $Indent, [int]$Width = 80) {
    $lines = [Collections.Generic.List[string]]::new()
    $line = ' ' * $Indent
    $empty = $true
    foreach ($word in $Text -split '\s+' | Where-Object { $_ }) {
        if (-not $empty -and $line.Length + 1 + $word.Length -gt $Width) {
            $lines.Add($line)
            $line = (' ' * $Hanging) + $word
        }
        else {
            $line += $(if ($empty) { $word } else { " $word" })
        }
        $empty = $false
    }
    if (-not $empty) { $lines.Add($line) }
    $lines
}

<#
.SYNOPSIS
    Turns about_<Topic>.md (PlatyPS's about template: '# Title', '## about_Topic', then '#'
    sections such as SHORT DESCRIPTION and '##' subtopics) into the text Get-Help prints:
    section names in capitals, text indented by four and wrapped at 80 columns, code as it is.
#>
function ConvertTo-AboutHelpText {
    param([Parameter(Mandatory)][string]$Path)
    $lines = Split-MarkdownLine ([IO.File]::ReadAllText($Path))
    $out = [Collections.Generic.List[string]]::new()
    $paragraph = [Collections.Generic.List[string]]::new()
    $seenTitle = $false
    $fence = $null
    $flushParagraph = {
        if ($paragraph.Count) {
            $first = $paragraph[0]
            if ($first -match '^([-*+]|\d+\.)\s') {
                foreach ($item in $paragraph) {
                    $marker = ($item -split '\s', 2)[0]
                    foreach ($l in Format-Wrapped (Convert-Inline $item) 4 (5 + $marker.Length)) { $out.Add($l) }
                }
            }
            elseif ($first -match '^\|') { foreach ($item in $paragraph) { $out.Add('    ' + $item) } }
            else { foreach ($l in Format-Wrapped (Convert-Inline ($paragraph -join ' ')) 4) { $out.Add($l) } }
            $out.Add('')
            $paragraph.Clear()
        }
    }
    foreach ($line in $lines) {
        if ($fence) {
            if ($line -match '^\s{0,3}(`{3,}|~{3,})\s*$' -and $Matches[1][0] -eq $fence[0]) { $fence = $null; $out.Add('') }
            else { $out.Add(('        ' + $line).TrimEnd()) }
            continue
        }
        if ($line -match '^\s{0,3}(`{3,}|~{3,})') { . $flushParagraph; $fence = $Matches[1]; continue }
        # A comment line is for the markdown's readers and tools (the docs tests' markers), not for Get-Help.
        if ($line -match '^\s*<!--.*-->\s*$') { continue }
        if ($line -match '^(#{1,3}) (.+)$') {
            . $flushParagraph
            $level = $Matches[1].Length
            $title = $Matches[2].Trim()
            if (-not $seenTitle -and $level -eq 1) { $seenTitle = $true; continue }  # the display title
            if ($title -like 'about_*' -and $level -eq 2 -and $out.Count -eq 0) {
                $out.Add('TOPIC'); $out.Add("    $title"); $out.Add('')
                continue
            }
            if ($level -eq 1) { $out.Add($title.ToUpperInvariant()) }
            else { $out.Add('  ' + $title); $out.Add('') }
            continue
        }
        if ($line.Trim() -eq '') { . $flushParagraph; continue }
        if ($line -match '^\s*([-*+]|\d+\.)\s+(.*)$') { $paragraph.Add("$($Matches[1]) $($Matches[2].Trim())"); continue }
        if ($paragraph.Count -and $paragraph[0] -match '^([-*+]|\d+\.)\s' -and $line -match '^\s') {
            $paragraph[$paragraph.Count - 1] += ' ' + $line.Trim()
            continue
        }
        $paragraph.Add($line.Trim())
    }
    . $flushParagraph
    while ($out.Count -and $out[$out.Count - 1] -eq '') { $out.RemoveAt($out.Count - 1) }
    ($out -join "`n") + "`n"
}

#endregion

# The three help scripts run in a child pwsh and take paths relative to the caller's location;
# .NET calls need full ones. Returns the imported module and the full markdown path.
function Import-HelpTarget([string]$ModulePath, [string]$MarkdownPath) {
    $full = (Resolve-Path -LiteralPath $ModulePath).ProviderPath
    if ($MarkdownPath) { $MarkdownPath = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($MarkdownPath) }
    [pscustomobject]@{ Module = (Import-Module $full -PassThru -Global); MarkdownPath = $MarkdownPath }
}

Export-ModuleMember -Function Get-CommandHelpFacts, Format-HelpSyntax, ConvertFrom-HelpMarkdown, ConvertTo-HelpMarkdownText,
    Read-HelpMarkdown, Get-DocumentedParameter, Get-HelpExample, Get-HelpMarkdownUpdate, Update-HelpMarkdown, ConvertTo-HelpParagraph,
    Get-HelpMarkdownProblem, ConvertTo-MamlHelp, ConvertTo-AboutHelpText, Import-HelpTarget

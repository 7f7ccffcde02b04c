# Help: every exported cmdlet explains itself (docs/help markdown -> MAML -> Get-Help), the
# HelpSkeleton task adds what is new while keeping the prose, and the manifest is complete.

BeforeDiscovery {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    $cmdlets = @((Get-Command -Module InitramfsPS -CommandType Cmdlet).Name | Sort-Object)
}

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module "$PSScriptRoot/../../tools/help/HelpMarkdown.psm1" -Force
    $script:repoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
    $script:helpSource = Join-Path $repoRoot 'docs/help'
    $script:moduleDir = (Get-Module InitramfsPS).ModuleBase

    # What a user must be told about: every parameter but the common ones. -WhatIf and -Confirm
    # are documented, as PlatyPS documents them.
    function Get-DocumentableParameter([string]$Name) {
        $common = [System.Management.Automation.Cmdlet]::CommonParameters
        @((Get-Command $Name).Parameters.Keys | Where-Object { -not $common.Contains($_) } | Sort-Object)
    }
}

Describe 'Help of <_>' -ForEach $cmdlets {
    BeforeAll {
        $script:name = $_
        $script:markdown = Join-Path $helpSource "$name.md"
        $script:text = if (Test-Path $markdown) { [IO.File]::ReadAllText($markdown) } else { '' }
        $script:documented = @((Get-DocumentedParameter (ConvertFrom-HelpMarkdown -Text $text)).Keys)
        $script:help = Get-Help $name -Full
        $script:expected = Get-DocumentableParameter $name
    }

    It 'has a markdown file in docs/help' {
        $markdown | Should -Exist
    }

    It 'has no {{ placeholder }} left in its markdown' {
        [regex]::Matches($text, '\{\{.*?\}\}').Value | Should -BeNullOrEmpty
    }

    It 'has a synopsis of its own' {
        $synopsis = "$($help.Synopsis)".Trim()
        $synopsis.Length | Should -BeGreaterThan 20
        $synopsis | Should -Not -Match '\{\{'
        # Help made from metadata alone puts the syntax where the synopsis goes.
        $synopsis | Should -Not -Match "^$([regex]::Escape($name))\s+[\[-]"
    }

    It 'has a description' {
        $description = ($help.description.Text -join "`n").Trim()
        $description.Length | Should -BeGreaterThan 100
        $description | Should -Not -Match '\{\{'
    }

    It 'has at least two examples, each with code and an explanation' {
        $examples = @($help.examples.example)
        $examples.Count | Should -BeGreaterOrEqual 2
        foreach ($example in $examples) {
            "$($example.code)".Trim() | Should -Not -BeNullOrEmpty -Because $example.title
            ($example.remarks.Text -join '').Trim() | Should -Not -BeNullOrEmpty -Because $example.title
        }
    }

    It 'has examples whose code parses' {
        foreach ($example in @($help.examples.example)) {
            $errors = $null
            $null = [System.Management.Automation.Language.Parser]::ParseInput("$($example.code)", [ref]$null, [ref]$errors)
            $errors | Should -BeNullOrEmpty -Because "$($example.title) must be valid PowerShell"
        }
    }

    It 'documents every parameter of the code in its markdown' {
        $expected | Where-Object { $_ -notin $documented } | Should -BeNullOrEmpty -Because 'build.ps1 -Task HelpSkeleton adds the missing blocks'
    }

    It 'documents no parameter the code does not have' {
        $documented | Where-Object { $_ -notin $expected } | Should -BeNullOrEmpty -Because 'a renamed or removed parameter must leave the help too'
    }

    It 'shows every parameter with its description in Get-Help' {
        @($help.parameters.parameter.name | Sort-Object) | Should -Be $expected
        foreach ($parameter in $expected) {
            $text = ((Get-Help $name -Parameter $parameter).description.Text -join '').Trim()
            $text.Length | Should -BeGreaterThan 10 -Because "-$parameter needs a description"
            $text | Should -Not -Match '\{\{'
        }
    }

    It 'gives each parameter the attributes of the code' {
        $command = Get-Command $name
        foreach ($parameter in $expected) {
            $metadata = $command.Parameters[$parameter]
            $first = @($metadata.ParameterSets.Values)[0]
            $shown = Get-Help $name -Parameter $parameter
            $shown.required | Should -Be "$($first.IsMandatory)".ToLowerInvariant() -Because "-$parameter"
            $shown.position | Should -Be $(if ($first.Position -ge 0) { "$($first.Position)" } else { 'named' }) -Because "-$parameter"
            $ways = @(if ($first.ValueFromPipeline) { 'ByValue' }; if ($first.ValueFromPipelineByPropertyName) { 'ByPropertyName' })
            $shown.pipelineInput | Should -Be $(if ($ways) { "True ($($ways -join ', '))" } else { 'False' }) -Because "-$parameter"
            $wildcards = [bool]($metadata.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
            $shown.globbing | Should -Be "$wildcards".ToLowerInvariant() -Because "-$parameter"
            $shown.aliases | Should -Be $(if ($metadata.Aliases.Count) { $metadata.Aliases -join ', ' } else { 'none' }) -Because "-$parameter"
        }
    }

    It 'has markdown that HelpSkeleton would leave as it is (syntax and metadata up to date)' {
        (Get-HelpMarkdownUpdate -Command (Get-Command $name) -Text $text).Action | Should -Be 'Unchanged'
    }
}

Describe 'Get-Help Export-Initramfs -Full' {
    BeforeAll {
        $script:text = Get-Help Export-Initramfs -Full | Out-String -Width 4096
        $script:syntax = @($text -split '\r?\n' | Where-Object { $_ -match '^\s*Export-Initramfs \[-Path\]' })
    }

    It 'shows one syntax line' {
        $syntax.Count | Should -Be 1
    }

    It 'names every parameter in the syntax line, ending with the common parameters' {
        foreach ($parameter in Get-DocumentableParameter Export-Initramfs) {
            $syntax[0] | Should -Match "\[?-$parameter\b" -Because "-$parameter is a parameter of Export-Initramfs"
        }
        $syntax[0] | Should -Match '\[-Compression \{None \| Gzip \| Zstd\}\]'
        $syntax[0] | Should -Match '\[-WhatIf\] \[-Confirm\] \[<CommonParameters>\]$'
    }

    It 'shows the sections of full help' {
        foreach ($section in 'NAME', 'SYNOPSIS', 'SYNTAX', 'DESCRIPTION', 'PARAMETERS', 'INPUTS', 'OUTPUTS', 'NOTES', 'RELATED LINKS') {
            $text | Should -Match "(?m)^$section\s*$"
        }
        $text | Should -Match 'Example 1'
        $text | Should -Match 'InitMissing'
    }
}

Describe 'about_InitramfsPS' {
    BeforeAll {
        $script:topic = Get-Help about_InitramfsPS | Out-String
    }

    It 'is found by Get-Help' {
        $topic | Should -Match 'TOPIC\s+about_InitramfsPS'
    }

    It 'explains the pipeline, the objects, registries, the cache and what the kernel needs' {
        foreach ($subject in 'Get-OciImage', 'Export-Initramfs', 'copy-on-write', 'INITRAMFSPS_CACHE', 'XDG_CACHE_HOME',
            '/init', '/dev/console', 'CONFIG_RD_ZSTD', 'CONFIG_RD_GZIP', 'Get-OciCache', 'Clear-OciCache', '-Offline') {
            $topic | Should -Match ([regex]::Escape($subject))
        }
    }

    It 'has no {{ placeholder }} left' {
        $topic | Should -Not -Match '\{\{'
    }
}

Describe 'The help markdown skeleton (build.ps1 -Task HelpSkeleton)' {
    BeforeAll {
        $script:copy = Join-Path $TestDrive 'help'
        Copy-Item -Recurse $helpSource $copy
        $script:original = @{}
        Get-ChildItem $helpSource -File | ForEach-Object { $original[$_.Name] = [IO.File]::ReadAllText($_.FullName) }
        # What the task makes of the docs as they are: the same bytes while they are up to date.
        $script:current = @{}
        foreach ($file in $original.Keys) {
            $command = Get-Command ($file -replace '\.md$') -CommandType Cmdlet -ErrorAction SilentlyContinue
            $current[$file] = if ($command) { (Get-HelpMarkdownUpdate -Command $command -Text $original[$file]).Text } else { $original[$file] }
        }

        # One file deleted, one parameter block deleted, one block of a parameter that does not exist.
        Remove-Item (Join-Path $copy 'Expand-OciLayers.md')
        $script:noClobberBlock = [regex]::Match($original['Export-Initramfs.md'], '(?s)### -NoClobber\n.*?(?=### )').Value
        $noClobberBlock | Should -Not -BeNullOrEmpty
        $script:noClobberText = [regex]::Match($noClobberBlock, '(?s)^### -NoClobber\n\n(.*?)\n\n```yaml').Groups[1].Value
        [IO.File]::WriteAllText((Join-Path $copy 'Export-Initramfs.md'), $original['Export-Initramfs.md'].Replace($noClobberBlock, ''))
        $script:bogusBlock = "### -Bogus`n`nA parameter that was renamed.`n`n" + '```yaml' + "`nType: String`n" + '```' + "`n`n"
        [IO.File]::WriteAllText((Join-Path $copy 'Get-OciImage.md'), $original['Get-OciImage.md'].Replace('### -Platform', $bogusBlock + '### -Platform'))

        $script:warnings = @()
        $script:output = & "$repoRoot/tools/help/Update-HelpMarkdown.ps1" -ModulePath (Get-Module InitramfsPS).Path -MarkdownPath $copy `
            -WarningVariable script:warnings 6>&1 | Out-String
    }

    It 'writes a skeleton for a cmdlet without markdown, every piece of prose a placeholder' {
        $file = Join-Path $copy 'Expand-OciLayers.md'
        $file | Should -Exist
        $text = Get-Content -Raw $file
        $text | Should -Match '(?m)^schema: 2\.0\.0$'
        $text | Should -Match '\{\{ Fill in the Synopsis \}\}'
        $text | Should -Match '\{\{ Fill in the Description \}\}'
        $text | Should -Match '\{\{ Add example code here \}\}'
        $text | Should -Match '(?m)^Expand-OciLayers \[-InputObject\] <OciImage> \[-MaxLayerSize <Int64>\] \[<CommonParameters>\]$'
        foreach ($parameter in Get-DocumentableParameter Expand-OciLayers) {
            $text | Should -Match "### -$parameter\n\n\{\{ Fill $parameter Description \}\}"
        }
    }

    It 'makes the help tests fail on the skeleton until its prose is written' {
        $problems = @(Get-HelpMarkdownProblem -Command (Get-Command Expand-OciLayers) -Path (Join-Path $copy 'Expand-OciLayers.md'))
        $problems | Should -Contain 'Expand-OciLayers: placeholder {{ Fill in the Synopsis }}'
        $problems | Should -Contain 'Expand-OciLayers: 1 examples with code; at least 2 are needed.'
        @(Get-HelpMarkdownProblem -Command (Get-Command Export-Initramfs) -Path (Join-Path $copy 'Export-Initramfs.md')) |
            Should -Contain 'Export-Initramfs: placeholder {{ Fill NoClobber Description }}'
    }

    It 'puts a missing parameter back, with a placeholder, in alphabetical order' {
        $text = [IO.File]::ReadAllText((Join-Path $copy 'Export-Initramfs.md'))
        $text | Should -Match '### -NoClobber\n\n\{\{ Fill NoClobber Description \}\}\n\n```yaml'
        $headings = [regex]::Matches($text, '(?m)^### -(\w+)$') | ForEach-Object { $_.Groups[1].Value }
        $headings | Should -Be ($headings | Sort-Object)
    }

    It 'keeps every other byte of an updated file' {
        $text = [IO.File]::ReadAllText((Join-Path $copy 'Export-Initramfs.md'))
        $text.Replace('{{ Fill NoClobber Description }}', $noClobberText) | Should -BeExactly $current['Export-Initramfs.md']
    }

    It 'removes the block of a parameter the cmdlet does not have, and says so' {
        [IO.File]::ReadAllText((Join-Path $copy 'Get-OciImage.md')) | Should -BeExactly $current['Get-OciImage.md']
        $warnings -join "`n" | Should -Match 'Get-OciImage\.md: removed the block of -Bogus'
    }

    It 'leaves files that are up to date untouched' {
        foreach ($file in $original.Keys | Where-Object { $_ -notin 'Expand-OciLayers.md', 'Export-Initramfs.md', 'Get-OciImage.md' }) {
            if ($current[$file] -cne $original[$file]) { continue }  # not up to date: the 'Help of' tests say so
            [IO.File]::ReadAllText((Join-Path $copy $file)) | Should -BeExactly $original[$file] -Because "$file was up to date"
        }
        $output | Should -Match 'Created\s+\S*Expand-OciLayers\.md'
        $output | Should -Match 'Updated\s+\S*Export-Initramfs\.md \(added [^)]*-NoClobber\b'
    }
}

Describe 'The module manifest' {
    BeforeAll {
        $script:manifestPath = Join-Path $moduleDir 'InitramfsPS.psd1'
        $script:data = Import-PowerShellDataFile $manifestPath
    }

    It 'passes Test-ModuleManifest' {
        { Test-ModuleManifest -Path $manifestPath -ErrorAction Stop } | Should -Not -Throw
    }

    It 'exports exactly its cmdlets, by name' {
        $data.CmdletsToExport | Should -Not -Contain '*'
        @($data.CmdletsToExport | Sort-Object) | Should -Be @((Get-Command -Module InitramfsPS -CommandType Cmdlet).Name | Sort-Object)
        $data.FunctionsToExport | Should -BeNullOrEmpty
        $data.AliasesToExport | Should -BeNullOrEmpty
    }

    It 'loads its format views' {
        $data.FormatsToProcess | Should -Contain 'InitramfsPS.Format.ps1xml'
        Join-Path $moduleDir 'InitramfsPS.Format.ps1xml' | Should -Exist
    }

    It 'describes the module for a gallery, without a HelpInfoUri no server answers' {
        $data.Description | Should -Not -BeNullOrEmpty
        $psData = $data.PrivateData.PSData
        $psData.Tags | Should -Contain 'initramfs'
        $psData.ProjectUri | Should -Match '^https://'
        $psData.LicenseUri | Should -Match '^https://'
        $psData.ReleaseNotes | Should -Not -BeNullOrEmpty
        $data.ContainsKey('HelpInfoUri') | Should -BeFalse
    }

    It 'ships its help next to the dll' {
        Join-Path $moduleDir 'en-US/InitramfsPS.dll-Help.xml' | Should -Exist
        Join-Path $moduleDir 'en-US/about_InitramfsPS.help.txt' | Should -Exist
    }

    It 'has a license' {
        Join-Path $repoRoot 'LICENSE' | Should -Exist
        Get-Content -TotalCount 1 (Join-Path $repoRoot 'LICENSE') | Should -Be 'MIT License'
    }
}

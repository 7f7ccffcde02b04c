# Every PowerShell code block of README.md and about_InitramfsPS.md, run as written in a fresh
# pwsh session, in a folder that holds what the blocks name: ./layout (tag app: the Debian
# minbase image), ./agent, ./init.sh, ./init-debug.sh. Names that point outside this machine are
# swapped for local ones by the one table below ($NameMap); a block whose recipe fails fails here.
#
# A comment line right above a block's fence says when a block is not simply run:
#   <!-- docs-test: parse-only: <why> -->    cannot run here (Docker Hub, a password prompt); parsed only
#   <!-- docs-test: file <name> -->          written to <name> in the folder, for a later block to use
#   <!-- docs-test: pester <name> -->        written to <name> and run with Pester: every test must pass
#   <!-- docs-test: run by <Test file> -->   run as written by that test file (which must read it)
#
# A C# block (```csharp) is a program, not a command: it must be marked "run by" the test file
# that builds and runs it (Package.Tests.ps1 builds the README's against the NuGet package).

BeforeDiscovery {
    $root = (Resolve-Path "$PSScriptRoot/../..").Path
    $blocks = foreach ($doc in 'README.md', 'docs/help/about_InitramfsPS.md') {
        $lines = [IO.File]::ReadAllLines((Join-Path $root $doc))
        $heading = ''
        for ($i = 0; $i -lt $lines.Count; $i++) {
            if ($lines[$i] -match '^#{1,4} (.+)$') { $heading = $Matches[1]; continue }
            if ($lines[$i] -notmatch '^```(powershell|csharp)\s*$') {
                if ($lines[$i] -match '^```') {
                    # Skip other fences whole, so a '```powershell' inside one is not taken for a block.
                    do { $i++ } while ($i -lt $lines.Count -and $lines[$i] -notmatch '^```\s*$')
                }
                continue
            }
            $language = $Matches[1]
            $marker = if ($i -gt 0 -and $lines[$i - 1] -match '^<!-- docs-test: (.+?) -->$') { $Matches[1] } else { '' }
            $start = $i + 1
            $code = [Collections.Generic.List[string]]::new()
            for ($i++; $i -lt $lines.Count -and $lines[$i] -notmatch '^```\s*$'; $i++) { $code.Add($lines[$i]) }
            @{ Doc = $doc; Line = $start; Heading = $heading; Marker = $marker; Language = $language; Code = ($code -join "`n") }
        }
    }
    $runnable = @($blocks | Where-Object { $_.Marker -eq '' -and $_.Language -eq 'powershell' })
    $powershell = @($blocks | Where-Object Language -EQ 'powershell')
    $pester = @($blocks | Where-Object { $_.Marker -like 'pester *' })
    foreach ($p in $pester) { $p.Files = @($blocks | Where-Object { $_.Doc -eq $p.Doc -and $_.Marker -like 'file *' }) }
    $elsewhere = @($blocks | Where-Object { $_.Marker -like 'run by *' })
    # Discovery's variables are gone when the tests run: the census goes in as test data.
    $census = @{ Blocks = $blocks; RunnableCount = $runnable.Count }
}

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force
    Import-Module $PSScriptRoot/DebianImage.psm1 -Force
    $script:repoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
    $script:modulePath = (Resolve-Path ($env:INITRAMFSPS_MODULE ?? "$repoRoot/out/InitramfsPS/InitramfsPS.psd1")).Path
    $script:site = New-TestDirectory -Temp -Prefix 'initramfsps-docs'

    # Docker Hub's images are the busybox test image in a registry on 127.0.0.1, under their names.
    $script:registry = Start-TestRegistry
    $busybox = New-BusyboxLayer -Applet sleep, mkdir, hostname
    $hubImage = New-TestOciLayout -Path (Join-Path $site 'hub') -Layer @(, $busybox) -Tag hub -Config @{
        Cmd = @('/bin/echo', 'image command ran'); Env = @('PATH=/usr/sbin:/usr/bin:/sbin:/bin')
    }
    $null = Push-TestImage -Layout $hubImage.Path -Tag hub -Registry $registry.Url -Repository library/python -DestinationTag 3.12-alpine
    $null = Push-TestImage -Layout $hubImage.Path -Tag hub -Registry $registry.Url -Repository library/alpine -DestinationTag 3.20
    # The fleet's own registry of "Shipping to a fleet" is the same one.
    $null = Push-TestImage -Layout $hubImage.Path -Tag hub -Registry $registry.Url -Repository fleet/app -DestinationTag 1.4

    # The one mapping from the names in the docs to the ones on this machine.
    $script:NameMap = [ordered]@{
        'python:3.12-alpine'                  = "$($registry.Url)/library/python:3.12-alpine"
        'alpine:3.20'                         = "$($registry.Url)/library/alpine:3.20"
        'registry.example.com/fleet/'         = "$($registry.Url)/fleet/"
        './out/InitramfsPS/InitramfsPS.psd1' = $modulePath
    }

    # ./layout:app is the Debian minbase image (merged /usr, gconv, a real userland): the layout's
    # blobs, with an index of its own that tags the minbase manifest 'app'.
    $debian = Get-DebianMinbaseLayout
    $layout = Join-Path $site 'layout'
    $null = New-Item -ItemType Directory -Path $layout
    Copy-Item -LiteralPath (Join-Path $debian.Path 'oci-layout') -Destination $layout
    $null = New-Item -ItemType SymbolicLink -Path (Join-Path $layout 'blobs') -Target (Join-Path $debian.Path 'blobs')
    $index = Get-Content -Raw -LiteralPath (Join-Path $debian.Path 'index.json') | ConvertFrom-Json
    $manifest = @($index.manifests | Where-Object { $_.annotations.'org.opencontainers.image.ref.name' -eq $debian.Tag })[0]
    $manifest.annotations.'org.opencontainers.image.ref.name' = 'app'
    [IO.File]::WriteAllText((Join-Path $layout 'index.json'), (@{ schemaVersion = 2; manifests = @($manifest) } | ConvertTo-Json -Depth 10))

    # The agent ends the VM when it has run, so the QEMU example returns.
    $files = @{
        'agent'         = "#!/bin/sh`necho 'agent running'`necho o > /proc/sysrq-trigger`nsleep 10`n"
        'init.sh'       = "#!/bin/sh`nmount -t proc proc /proc`nexec /usr/bin/agent`n"
        'init-debug.sh' = "#!/bin/sh`nmount -t proc proc /proc`nset -x`nexec /usr/bin/agent`n"
    }
    foreach ($name in $files.Keys) {
        [IO.File]::WriteAllText((Join-Path $site $name), $files[$name])
        chmod 0755 (Join-Path $site $name)
    }

    # The module is found by name, as after Install-PSResource (Package.Tests.ps1 installs it so).
    $modules = Split-Path -Parent (Split-Path -Parent $modulePath)
    $script:environment = @{
        INITRAMFSPS_CACHE = (Join-Path $site 'cache')
        PSModulePath      = "$modules$([IO.Path]::PathSeparator)$env:PSModulePath"
    }
    function script:ConvertTo-LocalBlock([string]$Code) {
        foreach ($name in $NameMap.Keys) { $Code = $Code.Replace($name, $NameMap[$name]) }
        $Code
    }
    # A native command that fails fails a block that is run, as a cmdlet's error does.
    $script:preamble = "`$PSNativeCommandUseErrorActionPreference = `$true`n"
    function script:Get-BlockText($Block) { "$($Block.Doc) line $($Block.Line) ($($Block.Heading))" }
}

AfterAll {
    if ($registry) { Stop-TestRegistry $registry }
    Remove-Item -LiteralPath $site -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'The PowerShell code blocks of the docs' -Tag Debian, Registry {
    It 'finds the blocks, and every block is run or marked' -ForEach $census {
        $Blocks.Count | Should -BeGreaterThan 10
        $RunnableCount | Should -BeGreaterThan 8
        foreach ($b in $Blocks | Where-Object { $_.Marker -ne '' }) {
            $b.Marker | Should -Match '^(parse-only: .+|file \S+\.ps1|pester \S+\.Tests\.ps1|run by \S+\.Tests\.ps1.*)$' -Because (Get-BlockText $b)
        }
        # A C# block cannot be run here as a command: the test file it names builds and runs it.
        foreach ($b in $Blocks | Where-Object Language -EQ 'csharp') {
            $b.Marker | Should -Match '^run by \S+\.Tests\.ps1' -Because "$(Get-BlockText $b) is C#: a test file must build and run it"
        }
        @($Blocks | Where-Object Language -EQ 'csharp').Count | Should -BeGreaterThan 0 -Because 'the README shows the C# use of the engine''s package'

    }

    It 'parses: <Doc> line <Line> (<Heading>)' -ForEach $powershell {
        $tokens = $errors = $null
        $null = [Management.Automation.Language.Parser]::ParseInput($Code, [ref]$tokens, [ref]$errors)
        $errors | Should -BeNullOrEmpty
    }

    It 'runs as written: <Doc> line <Line> (<Heading>)' -ForEach $runnable {
        $run = Invoke-ChildPwsh ($preamble + (ConvertTo-LocalBlock $Code)) -WorkingDirectory $site -Environment $environment -TimeoutSeconds 240
        $run.ExitCode | Should -Be 0 -Because "$Doc line $Line printed:`n$($run.Output)"
        if ($Code -match 'qemu-system') { $run.Output | Should -Match 'agent running' -Because 'the booted archive runs the agent' }
    }

    It 'runs the Pester tests of <Doc> line <Line> (<Heading>), with the script files the docs show' -ForEach $pester {
        $name = $Marker -replace '^pester ', ''
        foreach ($file in $Files) {
            [IO.File]::WriteAllText((Join-Path $site ($file.Marker -replace '^file ', '')), (ConvertTo-LocalBlock $file.Code))
        }
        [IO.File]::WriteAllText((Join-Path $site $name), (ConvertTo-LocalBlock $Code))
        $pesterModule = (Get-Module Pester).Path
        $runner = "Import-Module '$pesterModule'; `$r = Invoke-Pester -Path ./$name -PassThru -Output Detailed; " +
            "'RESULT {0} passed, {1} failed' -f `$r.PassedCount, (`$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount)"
        $run = Invoke-ChildPwsh $runner -WorkingDirectory $site -Environment $environment
        $run.Output | Should -Match 'RESULT [1-9]\d* passed, 0 failed' -Because $run.Output
    }

    It 'has the block run by the test file it names: <Doc> line <Line> (<Heading>)' -ForEach $elsewhere {
        $file = ($Marker -replace '^run by (\S+?\.Tests\.ps1).*$', '$1')
        $test = Get-Content -Raw -LiteralPath (Join-Path $PSScriptRoot $file)
        $test | Should -Match ([regex]::Escape("### $Heading")) -Because "$file reads the block under '### $Heading' of $Doc"
    }
}

# Installing the module the PowerShell way: the .nupkg build.ps1 -Task Package writes
# (tools/build/New-ModulePackage.ps1), installed with the README's PSResourceGet commands in new
# pwsh sessions whose HOME is a throw-away folder, then imported by name.
# The module under test is never imported here: only the child sessions load it.

BeforeAll {
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:repoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
    $script:moduleManifest = (Resolve-Path ($env:INITRAMFSPS_MODULE ?? "$repoRoot/out/InitramfsPS/InitramfsPS.psd1")).Path
    $script:moduleDir = Split-Path -Parent $moduleManifest
    $script:manifestData = Import-PowerShellDataFile -LiteralPath $moduleManifest
    $script:work = New-TestDirectory -Temp
    $script:childHome = Join-Path $work 'home'
    $null = New-Item -ItemType Directory -Path $childHome

    # The caller's own repository list, which packaging must leave alone.
    $script:userRepositories = Join-Path ([Environment]::GetFolderPath('LocalApplicationData')) 'PSResourceGet/PSResourceRepository.xml'
    function script:Get-FileState([string]$Path) {
        if (Test-Path -LiteralPath $Path) { (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash } else { 'absent' }
    }
    $script:userRepositoriesBefore = Get-FileState $userRepositories

    # $work is laid out as the repository root is after the Package task: the package in ./out.
    $script:package = & "$repoRoot/tools/build/New-ModulePackage.ps1" -ModulePath $moduleDir -OutputDirectory (Join-Path $work 'out')
    # The Package task writes the C# library's package beside it: installing the module from ./out
    # must take the module's, and the C# program below takes the library's from there.
    $script:corePackage = & "$repoRoot/tools/build/New-CorePackage.ps1" -ManifestPath $moduleManifest -OutputDirectory (Join-Path $work 'out')

    # Runs a command in a new session of the pwsh running this test, started in $work, with HOME
    # the throw-away folder, no XDG_* folders and no inherited PSModulePath (so the module can only
    # come from what was installed under that HOME).
    # A fresh session of a user whose HOME is the throw-away folder: no module path of ours.
    function script:Invoke-InstallSession([string]$Command) {
        $environment = @{ HOME = $childHome; INITRAMFSPS_CACHE = (Join-Path $work 'cache'); XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; XDG_CACHE_HOME = $null; PSModulePath = $null }
        Invoke-ChildPwsh $Command -WorkingDirectory $work -Environment $environment
    }

    # The module folder's files, by path relative to it ('en-US/...'), with their SHA-256.
    function script:Get-FolderHashes([string]$Path) {
        $table = @{}
        foreach ($file in Get-ChildItem -LiteralPath $Path -File -Recurse) {
            $table[[IO.Path]::GetRelativePath($Path, $file.FullName).Replace('\', '/')] = (Get-FileHash -LiteralPath $file.FullName -Algorithm SHA256).Hash
        }
        $table
    }
    $script:moduleFiles = Get-FolderHashes $moduleDir
}

AfterAll {
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'The module package (build.ps1 -Task Package)' {
    BeforeAll {
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($package.FullName)
        try {
            $script:packaged = @{}
            $script:nuspec = $null
            foreach ($entry in $zip.Entries) {
                $name = [Uri]::UnescapeDataString($entry.FullName)
                $stream = $entry.Open()
                try {
                    if ($name -like '*.nuspec' -and $name -notlike '*/*') {
                        $script:nuspec = [xml][IO.StreamReader]::new($stream).ReadToEnd()
                    }
                    elseif ($name -notlike '_rels/*' -and $name -notlike 'package/*' -and $name -ne '[Content_Types].xml') {
                        $packaged[$name] = [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($stream))
                    }
                }
                finally { $stream.Dispose() }
            }
        }
        finally { $zip.Dispose() }
    }

    It 'is named for the module and the manifest''s version' {
        $package.Name | Should -Be "InitramfsPS.$($manifestData.ModuleVersion).nupkg"
        $package.DirectoryName | Should -Be (Join-Path $work 'out')
        $corePackage.DirectoryName | Should -Be (Join-Path $work 'out') -Because 'the C# library''s package lies beside it, as the Package task writes both'
    }

    It 'holds every file of the module folder, byte for byte, and nothing else' {
        $moduleFiles.Keys | Should -Contain 'InitramfsPS.dll'
        $moduleFiles.Keys | Should -Contain 'InitramfsPS.psd1'
        $moduleFiles.Keys | Should -Contain 'InitramfsPS.Format.ps1xml'
        $moduleFiles.Keys | Should -Contain 'en-US/InitramfsPS.dll-Help.xml'
        $moduleFiles.Keys | Should -Contain 'en-US/about_InitramfsPS.help.txt'
        @($packaged.Keys | Sort-Object) | Should -Be @($moduleFiles.Keys | Sort-Object)
        $different = @($moduleFiles.Keys | Where-Object { $packaged[$_] -ne $moduleFiles[$_] })
        $different | Should -BeNullOrEmpty
    }

    It 'names the module, version, authors and description of the manifest' {
        $metadata = $nuspec.package.metadata
        $metadata.id | Should -Be 'InitramfsPS'
        $metadata.version | Should -Be $manifestData.ModuleVersion
        $metadata.authors | Should -Be $manifestData.Author
        $metadata.description | Should -Be $manifestData.Description
        $metadata.tags -split ' ' | Should -Contain 'PSModule'
    }

    It 'leaves the user''s own PSResourceGet repository list as it was' {
        Get-FileState $userRepositories | Should -Be $userRepositoriesBefore
    }
}

Describe 'Installing the package as the README shows' {
    BeforeAll {
        # The README's commands, as typed: the block after "### Installing the module".
        $readme = Get-Content -Raw -LiteralPath (Join-Path $repoRoot 'README.md')
        $section = $readme -split '(?m)^### Installing the module\r?$', 2
        $section.Count | Should -Be 2 -Because 'the README has a section "### Installing the module"'
        $script:readmeBlock = [regex]::Match($section[1], '(?s)```powershell\r?\n(.*?)```').Groups[1].Value
        $script:install = Invoke-InstallSession $readmeBlock

        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = 'not really an init'; Mode = '0755' })
        $image = New-TestOciLayout -Path (Join-Path $work 'layout') -Layer @(, $tar) -Tag app
        $script:archive = Join-Path $work 'installed.cpio.zst'
        $session = Invoke-InstallSession @"
Import-Module InitramfsPS
`$module = Get-Module InitramfsPS
`$cache = @(Get-OciCache)
`$report = Get-OciImage '$($image.Reference)' | Export-Initramfs '$archive' -WarningAction SilentlyContinue
[pscustomobject]@{
    ModuleBase   = `$module.ModuleBase
    Version      = "`$(`$module.Version)"
    Cmdlets      = @(Get-Command -Module InitramfsPS -CommandType Cmdlet | ForEach-Object Name)
    Synopsis     = (Get-Help Export-Initramfs).Synopsis
    PSModulePath = `$env:PSModulePath
    CacheBlobs   = `$cache.Count
    ReportPath   = `$report.Path
} | ConvertTo-Json -Compress
"@
        $script:sessionOutput = $session.Output
        $script:sessionExitCode = $session.ExitCode
        $json = $session.Output -split '\r?\n' | Where-Object { $_.StartsWith('{') } | Select-Object -Last 1
        $script:result = if ($json) { $json | ConvertFrom-Json } else { $null }
    }

    It 'runs Register-PSResourceRepository and Install-PSResource without an error' {
        $readmeBlock | Should -Match 'Register-PSResourceRepository -Name InitramfsPSLocal -Uri \./out -Trusted'
        $readmeBlock | Should -Match 'Install-PSResource InitramfsPS -Repository InitramfsPSLocal'
        $install.ExitCode | Should -Be 0 -Because $install.Output
    }

    It 'installs the module folder, file for file, in the user''s module folder under HOME' {
        $installed = Join-Path $childHome ".local/share/powershell/Modules/InitramfsPS/$($manifestData.ModuleVersion)"
        $installed | Should -Exist
        $installedFiles = Get-FolderHashes $installed
        $missing = @($moduleFiles.Keys | Where-Object { $installedFiles[$_] -ne $moduleFiles[$_] })
        $missing | Should -BeNullOrEmpty
    }

    It 'makes Import-Module InitramfsPS work by name in a new session, from that folder' {
        $sessionExitCode | Should -Be 0 -Because $sessionOutput
        $result.ModuleBase | Should -BeLike "$childHome/*"
        $result.Version | Should -Be $manifestData.ModuleVersion
        $result.PSModulePath -split ':' | Should -Not -Contain (Split-Path -Parent $moduleDir)
    }

    It 'exports the manifest''s cmdlets, one for each help page' {
        $pages = Get-ChildItem -LiteralPath (Join-Path $repoRoot 'docs/help') -Filter '*-*.md' | ForEach-Object BaseName
        @($manifestData.CmdletsToExport | Sort-Object) | Should -Be @($pages | Sort-Object)
        @($result.Cmdlets | Sort-Object) | Should -Be @($manifestData.CmdletsToExport | Sort-Object)
    }

    It 'gives Get-Help the written help, not the help made from metadata' {
        $markdown = Get-Content -Raw -LiteralPath (Join-Path $repoRoot 'docs/help/Export-Initramfs.md')
        $synopsis = [regex]::Match($markdown, '(?s)## SYNOPSIS\s+(.+?)\r?\n\r?\n').Groups[1].Value.Trim()
        $synopsis | Should -Not -BeNullOrEmpty
        $result.Synopsis | Should -Be $synopsis
    }

    It 'runs: lists the empty cache and exports an initramfs' {
        $result.CacheBlobs | Should -Be 0
        $result.ReportPath | Should -Be $archive
        $names = @(Get-CpioListing -Path $archive | ForEach-Object Name)
        $names | Should -Contain 'init'
        $names | Should -Contain 'dev/console'
    }
}

Describe 'The C# library package InitramfsPS.Core, used as the README shows' {
    BeforeAll {
        # The package as build.ps1 -Task Package writes it: ./out is the program's feed.
        $script:feed = Join-Path $work 'out'
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($corePackage.FullName)
        try {
            $script:coreEntries = @($zip.Entries | ForEach-Object { [Uri]::UnescapeDataString($_.FullName) })
            $spec = $zip.Entries | Where-Object FullName -Like '*.nuspec' | Select-Object -First 1
            $reader = [IO.StreamReader]::new($spec.Open())
            try { $script:coreNuspec = [xml]$reader.ReadToEnd() } finally { $reader.Dispose() }
        }
        finally { $zip.Dispose() }

        # The README's program, as written: the C# block after "### Using the engine from C#".
        $readme = Get-Content -Raw -LiteralPath (Join-Path $repoRoot 'README.md')
        $section = $readme -split '(?m)^### Using the engine from C#\r?$', 2
        $section.Count | Should -Be 2 -Because 'the README has a section "### Using the engine from C#"'
        $script:csharpBlock = [regex]::Match($section[1], '(?s)```csharp\r?\n(.*?)```').Groups[1].Value

        # Its folder: the busybox test image at ./layout (tag app), the agent it adds, a project
        # that references the package, and a nuget.config whose sources are the feed (for the
        # package) and the machine's package folder (for its dependencies, offline). Packages are
        # unpacked into a folder of the test's own, so no copy of an older build is taken.
        $script:app = Join-Path $work 'csharp'
        $null = New-Item -ItemType Directory -Path $app
        $layer = New-BusyboxLayer -Init "#!/bin/sh`necho from the package`npoweroff -f`n" -SystemDirectories
        $null = New-TestOciLayout -Path (Join-Path $app 'layout') -Layer @(, $layer) -Tag app
        [IO.File]::WriteAllText((Join-Path $app 'agent'), "#!/bin/sh`necho agent running`n")
        [IO.File]::SetLastWriteTimeUtc((Join-Path $app 'agent'), [datetime]::new(2024, 1, 1, 0, 0, 0, [DateTimeKind]::Utc))
        [IO.File]::WriteAllText((Join-Path $app 'Program.cs'), $csharpBlock)
        $framework = "net$([Environment]::Version.Major).0"
        [IO.File]::WriteAllText((Join-Path $app 'app.csproj'), @"
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>$framework</TargetFramework>
    <Nullable>enable</Nullable>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="InitramfsPS.Core" Version="$($manifestData.ModuleVersion)" />
  </ItemGroup>
</Project>
"@)
        $machinePackages = $env:NUGET_PACKAGES ?? (Join-Path $HOME '.nuget/packages')
        [IO.File]::WriteAllText((Join-Path $app 'nuget.config'), @"
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$(Join-Path $work 'packages')" />
  </config>
  <packageSources>
    <clear />
    <add key="feed" value="$feed" />
    <add key="machine" value="$machinePackages" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="feed"><package pattern="InitramfsPS.Core" /></packageSource>
    <packageSource key="machine"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
"@)
        $environment = @{ INITRAMFSPS_CACHE = (Join-Path $work 'cache-csharp'); NUGET_PACKAGES = $null; DOTNET_NOLOGO = '1'; DOTNET_CLI_TELEMETRY_OPTOUT = '1' }
        $script:build = Invoke-ChildPwsh 'dotnet build --configuration Release 2>&1; exit $LASTEXITCODE' -WorkingDirectory $app -Environment $environment -TimeoutSeconds 600
        $script:run = Invoke-ChildPwsh 'dotnet run --no-build --configuration Release 2>&1; exit $LASTEXITCODE' -WorkingDirectory $app -Environment $environment -TimeoutSeconds 300

        # The same image and changes through the cmdlets, with a cache of their own.
        $script:cmdlets = Invoke-ChildPwsh @"
Import-Module '$moduleManifest'
`$null = Get-OciImage oci:./layout:app -Platform linux/amd64 | Add-InitramfsFile ./agent /usr/bin/agent |
    Remove-InitramfsItem -Preset Docs | Export-Initramfs cmdlets.cpio.zst -CompressionLevel 19
"@ -WorkingDirectory $app -Environment @{ INITRAMFSPS_CACHE = (Join-Path $work 'cache-cmdlets') }
    }

    It 'packs InitramfsPS.Core with the manifest''s version: the dll, its XML docs and its dependencies' {
        $corePackage.Name | Should -Be "InitramfsPS.Core.$($manifestData.ModuleVersion).nupkg"
        $coreEntries | Should -Contain 'lib/net8.0/InitramfsPS.Core.dll'
        $coreEntries | Should -Contain 'lib/net8.0/InitramfsPS.Core.xml'
        $metadata = $coreNuspec.package.metadata
        $metadata.id | Should -Be 'InitramfsPS.Core'
        $metadata.version | Should -Be $manifestData.ModuleVersion
        $dependencies = @($metadata.dependencies.group | ForEach-Object { $_.dependency } | ForEach-Object id | Sort-Object -Unique)
        $dependencies | Should -Be @('Blake3', 'SharpCompress', 'ZstdSharp.Port')
    }

    It 'builds the README''s C# program against the package from a local folder feed' {
        $csharpBlock | Should -Match 'InitramfsBuilder\.FromImage\("oci:\./layout:app"'
        $build.ExitCode | Should -Be 0 -Because $build.Output
        Join-Path $work 'packages/initramfsps.core' | Should -Exist
    }

    It 'exports the busybox image to the same bytes as the cmdlets' {
        $run.ExitCode | Should -Be 0 -Because $run.Output
        $cmdlets.ExitCode | Should -Be 0 -Because $cmdlets.Output
        $fromPackage = (Get-FileHash -LiteralPath (Join-Path $app 'app.cpio.zst') -Algorithm SHA256).Hash.ToLowerInvariant()
        $fromCmdlets = (Get-FileHash -LiteralPath (Join-Path $app 'cmdlets.cpio.zst') -Algorithm SHA256).Hash.ToLowerInvariant()
        $fromPackage | Should -Be $fromCmdlets
        $run.Output | Should -Match ([regex]::Escape("sha256 $fromPackage"))
        $names = @(Get-CpioListing -Path (Join-Path $app 'app.cpio.zst') | ForEach-Object Name)
        $names | Should -Contain 'usr/bin/agent'
        $names | Should -Contain 'bin/busybox'
    }
}

using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace InitramfsPS.Core.Tests.Architecture
{
    /// <summary>One use of an engine type by another: who uses it, where, and which type.</summary>
    internal sealed record TypeUse(string FromType, string Member, string ToType);

    /// <summary>
    /// Reads which engine types each engine type uses, from the compiled assembly's metadata
    /// rather than from the source, so that nothing the compiler emits escapes: base types and
    /// interfaces, fields, properties, events, method signatures and locals, generic arguments and
    /// constraints, attributes (their constructors and typeof arguments) and every token in the IL
    /// of a method body. Nested types (lambdas' closures, iterators and async state machines
    /// among them) count as their outermost declaring type.
    /// </summary>
    internal static class TypeReferenceReader
    {
        /// <summary>The uses of one engine type by another (a type's use of itself is left out).</summary>
        public static IReadOnlyList<TypeUse> Read(string assemblyPath)
        {
            using FileStream file = File.OpenRead(assemblyPath);
            using var pe = new PEReader(file);
            MetadataReader md = pe.GetMetadataReader();
            var walker = new Walker(md, pe);
            foreach (TypeDefinitionHandle type in md.TypeDefinitions)
            {
                walker.ReadType(type);
            }
            return walker.Uses;
        }

        private sealed class Walker
        {
            private readonly MetadataReader md;
            private readonly PEReader pe;
            private readonly TypeSetProvider provider;
            private readonly AttributeTypeProvider attributeProvider;
            private readonly HashSet<TypeUse> seen = new();

            public List<TypeUse> Uses { get; } = new();

            public Walker(MetadataReader md, PEReader pe)
            {
                this.md = md;
                this.pe = pe;
                provider = new TypeSetProvider();
                attributeProvider = new AttributeTypeProvider(md);
            }

            public void ReadType(TypeDefinitionHandle handle)
            {
                TypeDefinition type = md.GetTypeDefinition(handle);
                string from = Name(Outermost(handle));
                string self = NestedName(handle);

                Add(from, self + " (base type)", type.BaseType);
                foreach (InterfaceImplementationHandle i in type.GetInterfaceImplementations())
                {
                    InterfaceImplementation impl = md.GetInterfaceImplementation(i);
                    Add(from, self + " (interface)", impl.Interface);
                    Attributes(from, self + " (interface)", impl.GetCustomAttributes());
                }
                Attributes(from, self, type.GetCustomAttributes());
                GenericParameters(from, self, type.GetGenericParameters());

                foreach (FieldDefinitionHandle f in type.GetFields())
                {
                    FieldDefinition field = md.GetFieldDefinition(f);
                    string member = self + "." + md.GetString(field.Name);
                    Add(from, member, field.DecodeSignature(provider, null));
                    Attributes(from, member, field.GetCustomAttributes());
                }
                foreach (PropertyDefinitionHandle p in type.GetProperties())
                {
                    PropertyDefinition property = md.GetPropertyDefinition(p);
                    string member = self + "." + md.GetString(property.Name);
                    MethodSignature<TypeSet> signature = property.DecodeSignature(provider, null);
                    Add(from, member, signature.ReturnType);
                    foreach (TypeSet parameter in signature.ParameterTypes)
                    {
                        Add(from, member, parameter);
                    }
                    Attributes(from, member, property.GetCustomAttributes());
                }
                foreach (EventDefinitionHandle e in type.GetEvents())
                {
                    EventDefinition ev = md.GetEventDefinition(e);
                    string member = self + "." + md.GetString(ev.Name);
                    Add(from, member, ev.Type);
                    Attributes(from, member, ev.GetCustomAttributes());
                }
                foreach (MethodDefinitionHandle m in type.GetMethods())
                {
                    ReadMethod(from, self, m);
                }
            }

            private void ReadMethod(string from, string self, MethodDefinitionHandle handle)
            {
                MethodDefinition method = md.GetMethodDefinition(handle);
                string member = self + "." + md.GetString(method.Name);
                MethodSignature<TypeSet> signature = method.DecodeSignature(provider, null);
                Add(from, member, signature.ReturnType);
                foreach (TypeSet parameter in signature.ParameterTypes)
                {
                    Add(from, member, parameter);
                }
                Attributes(from, member, method.GetCustomAttributes());
                foreach (ParameterHandle p in method.GetParameters())
                {
                    Attributes(from, member, md.GetParameter(p).GetCustomAttributes());
                }
                GenericParameters(from, member, method.GetGenericParameters());

                if (method.RelativeVirtualAddress == 0)
                {
                    return;
                }
                MethodBodyBlock body = pe.GetMethodBody(method.RelativeVirtualAddress);
                if (!body.LocalSignature.IsNil)
                {
                    StandaloneSignature locals = md.GetStandaloneSignature(body.LocalSignature);
                    foreach (TypeSet local in locals.DecodeLocalSignature(provider, null))
                    {
                        Add(from, member + " (local)", local);
                    }
                }
                foreach (ExceptionRegion region in body.ExceptionRegions)
                {
                    Add(from, member + " (catch)", region.CatchType);
                }
                foreach (EntityHandle token in IlTokens(body.GetILReader()))
                {
                    Add(from, member, token);
                }
            }

            private void GenericParameters(string from, string member, GenericParameterHandleCollection parameters)
            {
                foreach (GenericParameterHandle g in parameters)
                {
                    GenericParameter parameter = md.GetGenericParameter(g);
                    Attributes(from, member, parameter.GetCustomAttributes());
                    foreach (GenericParameterConstraintHandle c in parameter.GetConstraints())
                    {
                        Add(from, member + " (constraint)", md.GetGenericParameterConstraint(c).Type);
                    }
                }
            }

            private void Attributes(string from, string member, CustomAttributeHandleCollection attributes)
            {
                foreach (CustomAttributeHandle a in attributes)
                {
                    CustomAttribute attribute = md.GetCustomAttribute(a);
                    Add(from, member + " (attribute)", attribute.Constructor);
                    CustomAttributeValue<AttributeType> value = attribute.DecodeValue(attributeProvider);
                    foreach (CustomAttributeTypedArgument<AttributeType> argument in value.FixedArguments)
                    {
                        AttributeArgument(from, member, argument.Type, argument.Value);
                    }
                    foreach (CustomAttributeNamedArgument<AttributeType> argument in value.NamedArguments)
                    {
                        AttributeArgument(from, member, argument.Type, argument.Value);
                    }
                }
            }

            private void AttributeArgument(string from, string member, AttributeType type, object? value)
            {
                Add(from, member + " (attribute)", type.Engine);
                switch (value)
                {
                    case AttributeType typeOf:
                        Add(from, member + " (attribute)", typeOf.Engine);
                        break;
                    case ImmutableArray<CustomAttributeTypedArgument<AttributeType>> items:
                        foreach (CustomAttributeTypedArgument<AttributeType> item in items)
                        {
                            AttributeArgument(from, member, item.Type, item.Value);
                        }
                        break;
                }
            }

            /// <summary>The types a metadata token names: a type, or a member's declaring type and signature.</summary>
            private TypeSet Resolve(EntityHandle handle)
            {
                if (handle.IsNil)
                {
                    return TypeSet.Empty;
                }
                switch (handle.Kind)
                {
                    case HandleKind.TypeDefinition:
                        return TypeSet.Of((TypeDefinitionHandle)handle);
                    case HandleKind.TypeReference:
                        return TypeSet.Empty; // another assembly's type
                    case HandleKind.TypeSpecification:
                        return md.GetTypeSpecification((TypeSpecificationHandle)handle).DecodeSignature(provider, null);
                    case HandleKind.FieldDefinition:
                        return TypeSet.Of(md.GetFieldDefinition((FieldDefinitionHandle)handle).GetDeclaringType());
                    case HandleKind.MethodDefinition:
                        return TypeSet.Of(md.GetMethodDefinition((MethodDefinitionHandle)handle).GetDeclaringType());
                    case HandleKind.MemberReference:
                    {
                        MemberReference reference = md.GetMemberReference((MemberReferenceHandle)handle);
                        TypeSet types = Resolve(reference.Parent);
                        if (reference.GetKind() == MemberReferenceKind.Method)
                        {
                            MethodSignature<TypeSet> signature = reference.DecodeMethodSignature(provider, null);
                            types = types.Union(signature.ReturnType);
                            foreach (TypeSet parameter in signature.ParameterTypes)
                            {
                                types = types.Union(parameter);
                            }
                        }
                        else
                        {
                            types = types.Union(reference.DecodeFieldSignature(provider, null));
                        }
                        return types;
                    }
                    case HandleKind.MethodSpecification:
                    {
                        MethodSpecification spec = md.GetMethodSpecification((MethodSpecificationHandle)handle);
                        TypeSet types = Resolve(spec.Method);
                        foreach (TypeSet argument in spec.DecodeSignature(provider, null))
                        {
                            types = types.Union(argument);
                        }
                        return types;
                    }
                    case HandleKind.StandaloneSignature:
                    {
                        // calli: the signature's types
                        MethodSignature<TypeSet> signature = md.GetStandaloneSignature((StandaloneSignatureHandle)handle).DecodeMethodSignature(provider, null);
                        TypeSet types = signature.ReturnType;
                        foreach (TypeSet parameter in signature.ParameterTypes)
                        {
                            types = types.Union(parameter);
                        }
                        return types;
                    }
                    default:
                        return TypeSet.Empty;
                }
            }

            private void Add(string from, string member, EntityHandle handle) => Add(from, member, Resolve(handle));

            private void Add(string from, string member, TypeSet types)
            {
                foreach (TypeDefinitionHandle t in types.Types)
                {
                    string to = Name(Outermost(t));
                    if (to != from)
                    {
                        var use = new TypeUse(from, member, to);
                        if (seen.Add(use))
                        {
                            Uses.Add(use);
                        }
                    }
                }
            }

            private TypeDefinitionHandle Outermost(TypeDefinitionHandle handle)
            {
                TypeDefinitionHandle declaring = md.GetTypeDefinition(handle).GetDeclaringType();
                return declaring.IsNil ? handle : Outermost(declaring);
            }

            private string Name(TypeDefinitionHandle handle)
            {
                TypeDefinition type = md.GetTypeDefinition(handle);
                string ns = md.GetString(type.Namespace);
                string name = md.GetString(type.Name);
                return ns.Length == 0 ? name : ns + "." + name;
            }

            /// <summary>The name a nested type has inside its outermost type, e.g. Rootfs+&lt;&gt;c, for messages.</summary>
            private string NestedName(TypeDefinitionHandle handle)
            {
                TypeDefinition type = md.GetTypeDefinition(handle);
                TypeDefinitionHandle declaring = type.GetDeclaringType();
                return declaring.IsNil ? Name(handle) : NestedName(declaring) + "+" + md.GetString(type.Name);
            }
        }

        /// <summary>The metadata tokens among a method body's IL operands.</summary>
        private static IEnumerable<EntityHandle> IlTokens(BlobReader il)
        {
            var tokens = new List<EntityHandle>();
            while (il.RemainingBytes > 0)
            {
                int value = il.ReadByte();
                if (value == 0xFE)
                {
                    value = 0xFE00 | il.ReadByte();
                }
                OpCode op = OpCodesByValue[(ushort)value];
                switch (op.OperandType)
                {
                    case OperandType.InlineNone:
                        break;
                    case OperandType.ShortInlineBrTarget:
                    case OperandType.ShortInlineI:
                    case OperandType.ShortInlineVar:
                        il.Offset += 1;
                        break;
                    case OperandType.InlineVar:
                        il.Offset += 2;
                        break;
                    case OperandType.InlineBrTarget:
                    case OperandType.InlineI:
                    case OperandType.ShortInlineR:
                        il.Offset += 4;
                        break;
                    case OperandType.InlineI8:
                    case OperandType.InlineR:
                        il.Offset += 8;
                        break;
                    case OperandType.InlineSwitch:
                        int count = il.ReadInt32();
                        il.Offset += 4 * count;
                        break;
                    case OperandType.InlineString:
                        il.Offset += 4; // a user string, not a type
                        break;
                    case OperandType.InlineField:
                    case OperandType.InlineMethod:
                    case OperandType.InlineSig:
                    case OperandType.InlineTok:
                    case OperandType.InlineType:
                        tokens.Add(MetadataTokens.EntityHandle(il.ReadInt32()));
                        break;
                    default:
                        throw new InvalidOperationException($"IL operand type {op.OperandType} of {op.Name} is not known.");
                }
            }
            return tokens;
        }

        private static readonly Dictionary<ushort, OpCode> OpCodesByValue = typeof(OpCodes)
            .GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!)
            .ToDictionary(op => (ushort)op.Value);

        /// <summary>The engine types a signature mentions (another assembly's types are left out).</summary>
        private sealed class TypeSetProvider : ISignatureTypeProvider<TypeSet, object?>
        {
            public TypeSet GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => TypeSet.Of(handle);
            public TypeSet GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => TypeSet.Empty;
            public TypeSet GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) =>
                reader.GetTypeSpecification(handle).DecodeSignature(this, genericContext);
            public TypeSet GetPrimitiveType(PrimitiveTypeCode typeCode) => TypeSet.Empty;
            public TypeSet GetSZArrayType(TypeSet elementType) => elementType;
            public TypeSet GetArrayType(TypeSet elementType, ArrayShape shape) => elementType;
            public TypeSet GetByReferenceType(TypeSet elementType) => elementType;
            public TypeSet GetPointerType(TypeSet elementType) => elementType;
            public TypeSet GetPinnedType(TypeSet elementType) => elementType;
            public TypeSet GetGenericInstantiation(TypeSet genericType, ImmutableArray<TypeSet> typeArguments) =>
                typeArguments.Aggregate(genericType, (all, argument) => all.Union(argument));
            public TypeSet GetGenericMethodParameter(object? genericContext, int index) => TypeSet.Empty;
            public TypeSet GetGenericTypeParameter(object? genericContext, int index) => TypeSet.Empty;
            public TypeSet GetFunctionPointerType(MethodSignature<TypeSet> signature) =>
                signature.ParameterTypes.Aggregate(signature.ReturnType, (all, parameter) => all.Union(parameter));
            public TypeSet GetModifiedType(TypeSet modifier, TypeSet unmodifiedType, bool isRequired) => unmodifiedType.Union(modifier);
        }

        /// <summary>
        /// A type as attribute values decode to: the engine types it is or names, and, for another
        /// assembly's type, its runtime type, which the decoder needs to tell System.Type from an
        /// enum and an enum's size.
        /// </summary>
        private sealed record AttributeType(TypeSet Engine, Type? Runtime);

        private sealed class AttributeTypeProvider : ICustomAttributeTypeProvider<AttributeType>
        {
            private static readonly AttributeType None = new(TypeSet.Empty, null);
            private readonly MetadataReader md;

            public AttributeTypeProvider(MetadataReader md) => this.md = md;

            public AttributeType GetPrimitiveType(PrimitiveTypeCode typeCode) => None;
            public AttributeType GetSystemType() => new(TypeSet.Empty, typeof(Type));
            public AttributeType GetSZArrayType(AttributeType elementType) => elementType;
            public AttributeType GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => new(TypeSet.Of(handle), null);

            public AttributeType GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
            {
                TypeReference reference = reader.GetTypeReference(handle);
                string name = reader.GetString(reference.Namespace) + "." + reader.GetString(reference.Name);
                string assembly = reference.ResolutionScope.Kind == HandleKind.AssemblyReference
                    ? reader.GetAssemblyReference((AssemblyReferenceHandle)reference.ResolutionScope).GetAssemblyName().FullName
                    : "";
                return new(TypeSet.Empty, Type.GetType(assembly.Length == 0 ? name : name + ", " + assembly));
            }

            public AttributeType GetTypeFromSerializedName(string name)
            {
                TypeSet engine = Find(name);
                return engine.Types.Any() ? new(engine, null) : new(TypeSet.Empty, Type.GetType(name));
            }

            public bool IsSystemType(AttributeType type) => type.Runtime == typeof(Type);

            public PrimitiveTypeCode GetUnderlyingEnumType(AttributeType type)
            {
                foreach (TypeDefinitionHandle t in type.Engine.Types)
                {
                    foreach (FieldDefinitionHandle f in md.GetTypeDefinition(t).GetFields())
                    {
                        FieldDefinition field = md.GetFieldDefinition(f);
                        if ((field.Attributes & FieldAttributes.Static) == 0)
                        {
                            return field.DecodeSignature(new EnumUnderlyingType(), null);
                        }
                    }
                }
                if (type.Runtime is { IsEnum: true } runtime)
                {
                    return Type.GetTypeCode(Enum.GetUnderlyingType(runtime)) switch
                    {
                        TypeCode.SByte => PrimitiveTypeCode.SByte,
                        TypeCode.Byte => PrimitiveTypeCode.Byte,
                        TypeCode.Int16 => PrimitiveTypeCode.Int16,
                        TypeCode.UInt16 => PrimitiveTypeCode.UInt16,
                        TypeCode.Int32 => PrimitiveTypeCode.Int32,
                        TypeCode.UInt32 => PrimitiveTypeCode.UInt32,
                        TypeCode.Int64 => PrimitiveTypeCode.Int64,
                        _ => PrimitiveTypeCode.UInt64,
                    };
                }
                throw new InvalidOperationException("An attribute argument's enum type could not be found: " + type);
            }

            private TypeSet Find(string serializedName)
            {
                string name = serializedName.Split(',')[0].Trim().Replace('+', '.');
                foreach (TypeDefinitionHandle t in md.TypeDefinitions)
                {
                    TypeDefinition type = md.GetTypeDefinition(t);
                    string full = md.GetString(type.Name);
                    TypeDefinitionHandle outer = t;
                    while (!md.GetTypeDefinition(outer).GetDeclaringType().IsNil)
                    {
                        outer = md.GetTypeDefinition(outer).GetDeclaringType();
                        full = md.GetString(md.GetTypeDefinition(outer).Name) + "." + full;
                    }
                    string ns = md.GetString(md.GetTypeDefinition(outer).Namespace);
                    if ((ns.Length == 0 ? full : ns + "." + full) == name)
                    {
                        return TypeSet.Of(t);
                    }
                }
                return TypeSet.Empty;
            }
        }

        /// <summary>Reads an enum's value__ field type for attribute decoding.</summary>
        private sealed class EnumUnderlyingType : ISignatureTypeProvider<PrimitiveTypeCode, object?>
        {
            public PrimitiveTypeCode GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode;
            public PrimitiveTypeCode GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => throw Unexpected();
            public PrimitiveTypeCode GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => throw Unexpected();
            public PrimitiveTypeCode GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) => throw Unexpected();
            public PrimitiveTypeCode GetSZArrayType(PrimitiveTypeCode elementType) => throw Unexpected();
            public PrimitiveTypeCode GetArrayType(PrimitiveTypeCode elementType, ArrayShape shape) => throw Unexpected();
            public PrimitiveTypeCode GetByReferenceType(PrimitiveTypeCode elementType) => throw Unexpected();
            public PrimitiveTypeCode GetPointerType(PrimitiveTypeCode elementType) => throw Unexpected();
            public PrimitiveTypeCode GetPinnedType(PrimitiveTypeCode elementType) => throw Unexpected();
            public PrimitiveTypeCode GetGenericInstantiation(PrimitiveTypeCode genericType, ImmutableArray<PrimitiveTypeCode> typeArguments) => throw Unexpected();
            public PrimitiveTypeCode GetGenericMethodParameter(object? genericContext, int index) => throw Unexpected();
            public PrimitiveTypeCode GetGenericTypeParameter(object? genericContext, int index) => throw Unexpected();
            public PrimitiveTypeCode GetFunctionPointerType(MethodSignature<PrimitiveTypeCode> signature) => throw Unexpected();
            public PrimitiveTypeCode GetModifiedType(PrimitiveTypeCode modifier, PrimitiveTypeCode unmodifiedType, bool isRequired) => unmodifiedType;

            private static InvalidOperationException Unexpected() => new("An enum's value__ field is not of a primitive type.");
        }
    }

    /// <summary>A small set of engine types, as signatures decode to.</summary>
    internal readonly struct TypeSet
    {
        private readonly ImmutableHashSet<TypeDefinitionHandle>? types;

        private TypeSet(ImmutableHashSet<TypeDefinitionHandle> types) => this.types = types;

        public static TypeSet Empty => default;

        public IEnumerable<TypeDefinitionHandle> Types => types ?? Enumerable.Empty<TypeDefinitionHandle>();

        public static TypeSet Of(TypeDefinitionHandle handle) =>
            handle.IsNil ? Empty : new TypeSet(ImmutableHashSet.Create(handle));

        public TypeSet Union(TypeSet other) =>
            other.types is null ? this : types is null ? other : new TypeSet(types.Union(other.types));
    }
}
